"""Hugging Face's ViTMAE and this package's MAE (chapter 8): the same tensors, other names.

Our state-dict keys are the official MAE release's. Hugging Face's `ViTMAEForPreTraining`
names the same tensors differently and splits the fused `qkv` projection into three. Two HF
layouts exist: transformers >= 5 (`vit.layers.N.attention.q_proj`) and the one of the hub's
checkpoints and transformers 4 (`vit.encoder.layer.N.attention.attention.query`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .mae import MAEConfig

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
    """Rename (and split qkv of) an official/our MAE state dict for `ViTMAEForPreTraining`
    (chapter 8)."""
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
    """The inverse of `to_hf_vitmae`, for either HF layout (detected from the keys). Chapter 8."""
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
    """Keyword arguments for `transformers.ViTMAEConfig` describing a `MaskedAutoencoderViT`.
    Chapter 8."""
    c = model.config
    if c.encoder_mask_token:
        raise ValueError("this model gives its encoder mask tokens (an ablation); Hugging Face's "
                         "ViTMAE has no such option, so it cannot be converted")
    return dict(
        image_size=c.img_size, patch_size=c.patch_size, num_channels=c.in_chans,
        hidden_size=c.embed_dim, num_hidden_layers=c.depth,
        num_attention_heads=c.num_heads, intermediate_size=int(c.embed_dim * c.mlp_ratio),
        decoder_hidden_size=c.decoder_embed_dim, decoder_num_hidden_layers=c.decoder_depth,
        decoder_num_attention_heads=c.decoder_num_heads,
        decoder_intermediate_size=int(c.decoder_embed_dim * c.mlp_ratio),
        norm_pix_loss=c.norm_pix_loss, layer_norm_eps=c.layer_norm_eps, qkv_bias=True,
        hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )


def mae_config_from_hf(config: Mapping[str, Any]) -> MAEConfig:
    """The `MAEConfig` of a Hugging Face ViTMAE config (a dict, e.g. `ViTMAEConfig.to_dict()`
    or a hub model's config.json). Chapter 8."""
    return MAEConfig(
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
