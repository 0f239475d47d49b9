"""Checkpoints: loading them, the official MAE releases, and Hugging Face's ViTMAE.

Our state-dict keys are the official MAE release's. Hugging Face's `ViTMAEForPreTraining`
names the same tensors differently and splits the fused `qkv` projection into three. Two HF
layouts exist: transformers >= 5 (`vit.layers.N.attention.q_proj`) and the one of the hub's
checkpoints and transformers 4 (`vit.encoder.layer.N.attention.attention.query`).
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .mae import PRESETS, MaskedAutoencoderViT
from .vit import VisionTransformer

Tensor = torch.Tensor

# Top-level tensors: ours (official) -> Hugging Face.
_TOP = {
    "cls_token": "vit.embeddings.cls_token",
    "pos_embed": "vit.embeddings.position_embeddings",
    "patch_embed.proj.weight": "vit.embeddings.patch_embeddings.projection.weight",
    "patch_embed.proj.bias": "vit.embeddings.patch_embeddings.projection.bias",
    "norm.weight": "vit.layernorm.weight",
    "norm.bias": "vit.layernorm.bias",
    "mask_token": "decoder.mask_token",
    "decoder_pos_embed": "decoder.decoder_pos_embed",
}
for _name in ("decoder_embed", "decoder_norm", "decoder_pred"):
    for _p in ("weight", "bias"):
        _TOP[f"{_name}.{_p}"] = f"decoder.{_name}.{_p}"

# Inside a transformer block: ours -> HF, per layout; `qkv` is split into the three names.
_BLOCK = {
    "v5": {"norm1": "layernorm_before", "norm2": "layernorm_after", "attn.proj": "attention.o_proj",
           "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",
           "qkv": ("attention.q_proj", "attention.k_proj", "attention.v_proj")},
    "v4": {"norm1": "layernorm_before", "norm2": "layernorm_after",
           "attn.proj": "attention.output.dense", "mlp.fc1": "intermediate.dense",
           "mlp.fc2": "output.dense",
           "qkv": ("attention.attention.query", "attention.attention.key",
                   "attention.attention.value")},
}
_ENCODER_PREFIX = {"v5": "vit.layers.", "v4": "vit.encoder.layer."}
_BLOCK_KEY = re.compile(r"^(blocks|decoder_blocks)\.(\d+)\.(.+)\.(weight|bias)$")


def to_hf_vitmae(state_dict: Mapping[str, Tensor], layout: str = "v5") -> dict[str, Tensor]:
    """Rename (and split qkv of) an official/our MAE state dict for `ViTMAEForPreTraining`."""
    if layout not in _BLOCK:
        raise ValueError(f"layout must be 'v5' (transformers >= 5) or 'v4', got {layout!r}")
    names, out = _BLOCK[layout], {}
    for key, value in state_dict.items():
        if key in _TOP:
            out[_TOP[key]] = value
            continue
        match = _BLOCK_KEY.match(key)
        if match is None:
            raise KeyError(f"no Hugging Face name is known for the key {key!r}")
        stack, index, inner, param = match.groups()
        prefix = (_ENCODER_PREFIX[layout] if stack == "blocks" else "decoder.decoder_layers.")
        prefix += f"{index}."
        if inner == "attn.qkv":
            for hf_name, part in zip(names["qkv"], value.chunk(3, dim=0), strict=True):
                out[f"{prefix}{hf_name}.{param}"] = part
        elif inner in names:
            out[f"{prefix}{names[inner]}.{param}"] = value
        else:
            raise KeyError(f"no Hugging Face name is known for the key {key!r}")
    return out


def from_hf_vitmae(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The inverse of `to_hf_vitmae`, for either HF layout (detected from the keys)."""
    layout = "v4" if any(k.startswith("vit.encoder.layer.") for k in state_dict) else "v5"
    inverse_top = {theirs: ours for ours, theirs in _TOP.items()}
    inverse_block = {theirs: ours for ours, theirs in _BLOCK[layout].items() if ours != "qkv"}
    qkv_names = _BLOCK[layout]["qkv"]
    block_key = re.compile(
        rf"^({re.escape(_ENCODER_PREFIX[layout])}|decoder\.decoder_layers\.)(\d+)\.(.+)\.(weight|bias)$"
    )
    out: dict[str, Tensor] = {}
    qkv_parts: dict[str, list[Tensor | None]] = {}
    for key, value in state_dict.items():
        if key in inverse_top:
            out[inverse_top[key]] = value
            continue
        match = block_key.match(key)
        if match is None:
            raise KeyError(f"no MAE name is known for the Hugging Face key {key!r}")
        prefix, index, inner, param = match.groups()
        stack = "blocks" if prefix == _ENCODER_PREFIX[layout] else "decoder_blocks"
        if inner in qkv_names:  # q, k, v are stacked back into one fused projection
            parts = qkv_parts.setdefault(f"{stack}.{index}.attn.qkv.{param}", [None] * 3)
            parts[qkv_names.index(inner)] = value
        elif inner in inverse_block:
            out[f"{stack}.{index}.{inverse_block[inner]}.{param}"] = value
        else:
            raise KeyError(f"no MAE name is known for the Hugging Face key {key!r}")
    for key, parts in qkv_parts.items():
        if any(p is None for p in parts):
            raise KeyError(f"{key}: the Hugging Face state dict lacks one of query, key, value")
        out[key] = torch.cat(parts, dim=0)
    return out


def vitmae_config_kwargs(model: nn.Module) -> dict[str, Any]:
    """Keyword arguments for `transformers.ViTMAEConfig` describing a `MaskedAutoencoderViT`."""
    c = model.config
    return dict(
        image_size=c["img_size"], patch_size=c["patch_size"], num_channels=c["in_chans"],
        hidden_size=c["embed_dim"], num_hidden_layers=c["depth"],
        num_attention_heads=c["num_heads"], intermediate_size=int(c["embed_dim"] * c["mlp_ratio"]),
        decoder_hidden_size=c["decoder_embed_dim"], decoder_num_hidden_layers=c["decoder_depth"],
        decoder_num_attention_heads=c["decoder_num_heads"],
        decoder_intermediate_size=int(c["decoder_embed_dim"] * c["mlp_ratio"]),
        norm_pix_loss=c["norm_pix_loss"], layer_norm_eps=c["layer_norm_eps"], qkv_bias=True,
        hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )


def read_file(path: str | os.PathLike) -> Any:
    """`torch.load(path, weights_only=True)` on the CPU (no code runs on load), with a clear
    error for a truncated, damaged or foreign file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # truncated file, not a checkpoint, pickled code, ...
        raise ValueError(f"could not read the checkpoint {os.fspath(path)!r}: {exc}. The file "
                         "may be truncated or not a PyTorch checkpoint; nothing was changed. "
                         "Download or save it again") from exc


def _describe(keys: list[str], limit: int = 10) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (and {len(keys) - limit} more)" if len(keys) > limit else "")


def load_checkpoint(model: nn.Module, checkpoint: str | os.PathLike | Mapping[str, Any],
                    strict: bool = True) -> tuple[list[str], list[str]]:
    """Load weights into `model` from a file or a state dict; return (missing, unexpected).

    Files are read with `torch.load(weights_only=True)` (no code runs on load). A dict holding
    the weights under "model" (as the official releases and our trainer write) is unwrapped.
    Keys or shapes that do not fit are named in the error; `strict=False` tolerates missing
    and unexpected keys (e.g. an encoder-only checkpoint) but never a shape mismatch.
    """
    state = checkpoint if isinstance(checkpoint, Mapping) else read_file(checkpoint)
    if "model" in state and isinstance(state["model"], Mapping):
        state = state["model"]
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                         for k in set(own) & set(state) if state[k].shape != own[k].shape)
    problems = []
    if wrong_shape:
        problems.append(f"shapes differ for {_describe(wrong_shape)}")
    if strict and missing:
        problems.append(f"missing keys: {_describe(missing)}")
    if strict and unexpected:
        problems.append(f"unexpected keys: {_describe(unexpected)}")
    if problems:
        raise ValueError("the checkpoint does not fit this model's architecture; "
                         + "; ".join(problems)
                         + ". Build the model with the checkpoint's configuration "
                         "(or pass strict=False to load a partial checkpoint).")
    model.load_state_dict(state, strict=False)
    return missing, unexpected


def mae_kwargs_from_hf_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """`MaskedAutoencoderViT` keyword arguments from a Hugging Face ViTMAE config (a dict, e.g.
    `ViTMAEConfig.to_dict()` or a hub model's config.json)."""
    return dict(
        img_size=config["image_size"], patch_size=config["patch_size"],
        in_chans=config.get("num_channels", 3), embed_dim=config["hidden_size"],
        depth=config["num_hidden_layers"], num_heads=config["num_attention_heads"],
        decoder_embed_dim=config["decoder_hidden_size"],
        decoder_depth=config["decoder_num_hidden_layers"],
        decoder_num_heads=config["decoder_num_attention_heads"],
        mlp_ratio=config["intermediate_size"] / config["hidden_size"],
        norm_pix_loss=bool(config.get("norm_pix_loss", False)),
        layer_norm_eps=config.get("layer_norm_eps", 1e-12),
    )


# ---------------------------------------------------------------------------------------------
# The official releases (He et al., github.com/facebookresearch/mae)


@dataclass(frozen=True)
class OfficialCheckpoint:
    url: str
    preset: str  # the architecture, a name of mae_tutorial.mae.PRESETS
    has_decoder: bool  # False: encoder only, it cannot reconstruct
    norm_pix_loss: bool  # the target the decoder was trained for
    md5_prefix: str | None  # as published in the official README (None: not published)


_BASE_URL = "https://dl.fbaipublicfiles.com/mae"
OFFICIAL_CHECKPOINTS: dict[str, OfficialCheckpoint] = {
    "mae_pretrain_vit_base": OfficialCheckpoint(
        f"{_BASE_URL}/pretrain/mae_pretrain_vit_base.pth", "vit_base_patch16", False, True,
        "8cad7c"),
    "mae_pretrain_vit_large": OfficialCheckpoint(
        f"{_BASE_URL}/pretrain/mae_pretrain_vit_large.pth", "vit_large_patch16", False, True,
        "b8b06e"),
    "mae_pretrain_vit_huge": OfficialCheckpoint(
        f"{_BASE_URL}/pretrain/mae_pretrain_vit_huge.pth", "vit_huge_patch14", False, True,
        "9bdbb0"),
    "mae_pretrain_vit_base_full": OfficialCheckpoint(
        f"{_BASE_URL}/pretrain/mae_pretrain_vit_base_full.pth", "vit_base_patch16", True, True,
        None),
    "mae_pretrain_vit_large_full": OfficialCheckpoint(
        f"{_BASE_URL}/pretrain/mae_pretrain_vit_large_full.pth", "vit_large_patch16", True,
        True, None),
    "mae_pretrain_vit_huge_full": OfficialCheckpoint(
        f"{_BASE_URL}/pretrain/mae_pretrain_vit_huge_full.pth", "vit_huge_patch14", True, True,
        None),
    "mae_visualize_vit_base": OfficialCheckpoint(
        f"{_BASE_URL}/visualize/mae_visualize_vit_base.pth", "vit_base_patch16", True, False,
        None),
    "mae_visualize_vit_large": OfficialCheckpoint(
        f"{_BASE_URL}/visualize/mae_visualize_vit_large.pth", "vit_large_patch16", True, False,
        None),
}


def _file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_checksum(path: str | os.PathLike, md5_prefix: str | None) -> None:
    """Check a downloaded file. With a published MD5 prefix, the file must match it. Without
    one, the SHA-256 is recorded beside the file on first use (`<file>.sha256`) and every later
    use must match that record, so a file that changes on disk is caught."""
    path = Path(path)
    if md5_prefix is not None:
        digest = _file_digest(path, "md5")
        if not digest.startswith(md5_prefix):
            raise ValueError(f"checksum mismatch for {path}: MD5 {digest[:12]}..., expected "
                             f"{md5_prefix}... (the published value). The file is damaged or "
                             "not the official one: delete it and download it again")
        return
    record = path.with_name(path.name + ".sha256")
    digest = _file_digest(path, "sha256")
    if not record.exists():
        record.write_text(digest + "\n")
        return
    if record.read_text().strip() != digest:
        raise ValueError(f"checksum mismatch for {path}: its SHA-256 no longer matches the one "
                         f"recorded in {record} when it was first downloaded. The file changed "
                         "on disk: delete both files and download it again")


def download_checkpoint(name: str, root: str | os.PathLike = "data/checkpoints") -> Path:
    """The path of an official checkpoint, downloaded into `root` on first use and verified."""
    if name not in OFFICIAL_CHECKPOINTS:
        raise ValueError(f"unknown official checkpoint {name!r}; choose one of "
                         f"{sorted(OFFICIAL_CHECKPOINTS)}")
    entry = OFFICIAL_CHECKPOINTS[name]
    path = Path(root) / f"{name}.pth"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        try:
            urllib.request.urlretrieve(entry.url, tmp)
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            raise RuntimeError(
                f"could not download {entry.url} ({exc}). Offline? Download it elsewhere and "
                f"put it at {path.resolve()}, or pass the file's path instead of its name"
            ) from exc
        os.replace(tmp, path)
    verify_checksum(path, entry.md5_prefix)
    return path


def _infer_preset(state: Mapping[str, Tensor]) -> str:
    dim = state["cls_token"].shape[-1]
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    patch = state["patch_embed.proj.weight"].shape[-1]
    for name, p in PRESETS.items():
        if (p["embed_dim"], p["depth"], p["patch_size"]) == (dim, depth, patch):
            return name
    raise ValueError(f"cannot tell the architecture of this checkpoint (embed dim {dim}, depth "
                     f"{depth}, patch {patch}); build the model yourself and call "
                     "load_checkpoint(model, path)")


def mae_from_checkpoint(source: str | os.PathLike, root: str | os.PathLike = "data/checkpoints"
                        ) -> MaskedAutoencoderViT:
    """A `MaskedAutoencoderViT` with the weights of an official release (by name, e.g.
    "mae_visualize_vit_large", downloaded and verified), an official-format file, or a
    checkpoint written by this package's trainer.

    Encoder-only files load with their decoder missing; the model is then marked
    `encoder_only` and refuses to reconstruct.
    """
    if isinstance(source, str) and source in OFFICIAL_CHECKPOINTS:
        entry = OFFICIAL_CHECKPOINTS[source]
        state = _read_state(download_checkpoint(source, root))
        kwargs = {**PRESETS[entry.preset], "norm_pix_loss": entry.norm_pix_loss}
    else:
        raw = _read_state(source, unwrap=False)
        state = raw["model"] if isinstance(raw.get("model"), Mapping) else raw
        if "model_config" in raw:  # written by mae_tutorial.train
            kwargs = dict(raw["model_config"])
        else:
            kwargs = dict(PRESETS[_infer_preset(state)])
    model = MaskedAutoencoderViT(**kwargs)
    missing, _ = load_checkpoint(model, state, strict=False)
    model.encoder_only = any(k.startswith(("decoder", "mask_token")) for k in missing)
    encoder_missing = [k for k in missing if not k.startswith(("decoder", "mask_token"))]
    if encoder_missing:
        raise ValueError(f"the checkpoint lacks encoder weights: {_describe(encoder_missing)}")
    return model


def _read_state(path: str | os.PathLike, unwrap: bool = True) -> dict[str, Any]:
    state = read_file(path)
    if unwrap and isinstance(state.get("model"), Mapping):
        state = state["model"]
    return state


def vit_from_mae(source: MaskedAutoencoderViT | Mapping[str, Tensor], num_classes: int,
                 global_pool: bool = True, drop_path_rate: float = 0.0,
                 **vit_kwargs: Any) -> VisionTransformer:
    """A `VisionTransformer` classifier whose encoder starts from an MAE's encoder.

    `source` is a model (its architecture is used) or a state dict (pass the architecture in
    `vit_kwargs`). The head and, with global pooling, `fc_norm` start fresh (the head with the
    paper's small init, std 2e-5); the MAE's final `norm` is used only for cls-token pooling.
    """
    if isinstance(source, MaskedAutoencoderViT):
        c = source.config
        vit_kwargs = dict(img_size=c["img_size"], patch_size=c["patch_size"],
                          in_chans=c["in_chans"], embed_dim=c["embed_dim"], depth=c["depth"],
                          num_heads=c["num_heads"], mlp_ratio=c["mlp_ratio"], **vit_kwargs)
        state = source.state_dict()
    else:
        state = source
    vit = VisionTransformer(num_classes=num_classes, global_pool=global_pool,
                            drop_path_rate=drop_path_rate, **vit_kwargs)
    encoder = {k: v for k, v in state.items()
               if not k.startswith(("decoder", "mask_token", "head.", "fc_norm."))
               and not (global_pool and k.startswith("norm."))}
    missing, _ = load_checkpoint(vit, encoder, strict=False)
    expected_missing = {"head.weight", "head.bias", "fc_norm.weight", "fc_norm.bias"}
    if set(missing) - expected_missing:
        raise ValueError("the MAE weights do not cover the classifier's encoder; missing: "
                         f"{_describe(sorted(set(missing) - expected_missing))}")
    nn.init.normal_(vit.head.weight, std=2e-5)
    nn.init.zeros_(vit.head.bias)
    return vit
