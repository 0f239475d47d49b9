"""mae-tutorial: Masked Autoencoders (He et al., 2021) step by step, in PyTorch.

Three layers. The core, the model itself, is imported here: `patches`, `masking`, `pos_embed`,
`vit`, `mae` (and `runtime`). Around it, one module per concern (data, augmentation,
checkpoints, figures) and the two entry points, `train` and `evaluate`. On top, `lab`: the
experiments the chapters and benchmarks share (cached models, ablations, shipped results).
All but the core load on first use, e.g. `mt.train` or `mt.load_weights`, so
`import mae_tutorial` stays cheap: no matplotlib, torchvision or scikit-image.
"""

from importlib import import_module
from typing import Any

from .mae import (
    MODEL_PRESETS,
    EncoderMaskTokenMAE,
    MAEConfig,
    MaskedAutoencoderViT,
    build_mae,
    mae_from_preset,
    normalize_patches,
)
from .masking import num_visible, random_masking
from .patches import patchify, unpatchify
from .pos_embed import interpolate_pos_embed, sincos_2d
from .runtime import derive_seed, pick_device, seed_everything
from .vit import Attention, Block, Mlp, PatchEmbed, VisionTransformer, ViTEncoder

# The outer layer, one module per concern, loaded when first used.
SUBMODULES = ("augment", "autoencoder", "batches", "checkpoint", "config", "contrastive", "data",
              "evaluate", "finetune", "hf", "lab", "official", "optim", "paper", "photos",
              "train", "viz")
# Names handed on from the outer layer: name -> its module.
LAZY_NAMES = {"load_weights": "checkpoint", "mae_from_checkpoint": "checkpoint",
              "read_checkpoint": "checkpoint", "vit_from_mae": "checkpoint",
              "to_hf_vitmae": "hf", "from_hf_vitmae": "hf"}

__all__ = [
    "MODEL_PRESETS", "Attention", "Block", "EncoderMaskTokenMAE", "MAEConfig",
    "MaskedAutoencoderViT", "Mlp", "PatchEmbed", "ViTEncoder", "VisionTransformer", "build_mae",
    "derive_seed", "interpolate_pos_embed", "mae_from_preset",
    "normalize_patches", "num_visible", "patchify", "pick_device", "random_masking",
    "seed_everything", "sincos_2d", "unpatchify", *SUBMODULES, *LAZY_NAMES,
]


def _version() -> str:
    """The package's version, written once, in pyproject.toml: as installed (the metadata pip
    wrote), else read from the pyproject.toml beside a checkout that was not installed."""
    import re
    from importlib.metadata import PackageNotFoundError, version
    from pathlib import Path

    try:
        return version("mae-tutorial")
    except PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        found = (re.search(r'^version = "([^"]+)"', pyproject.read_text(), re.M)
                 if pyproject.exists() else None)
        return found.group(1) if found else "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":  # worked out on first use: the import stays cheap
        return _version()
    if name in SUBMODULES:
        return import_module(f".{name}", __name__)
    if name in LAZY_NAMES:
        return getattr(import_module(f".{LAZY_NAMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
