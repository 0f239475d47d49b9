"""mae-tutorial: Masked Autoencoders (He et al., 2021) step by step, in PyTorch."""

from . import autoencoder, data, evaluate, train, viz, weights  # mt.data.sample_photo, ...
from .mae import PRESETS, MaskedAutoencoderViT, mae_from_preset
from .masking import num_visible, random_masking
from .patches import patchify, unpatchify
from .pos_embed import sincos_2d
from .runtime import budget, pick_device, seed_everything
from .vit import Attention, Block, Mlp, PatchEmbed, VisionTransformer
from .weights import (
    from_hf_vitmae,
    load_checkpoint,
    mae_from_checkpoint,
    to_hf_vitmae,
    vit_from_mae,
)

__all__ = [
    "PRESETS", "Attention", "Block", "MaskedAutoencoderViT", "Mlp", "PatchEmbed",
    "VisionTransformer", "budget", "from_hf_vitmae", "load_checkpoint", "mae_from_preset",
    "num_visible", "patchify", "pick_device", "random_masking", "seed_everything", "sincos_2d",
    "to_hf_vitmae", "unpatchify", "mae_from_checkpoint", "vit_from_mae", "autoencoder", "data",
    "evaluate",
    "train", "viz", "weights",
]
