"""The Masked Autoencoder (He, Chen, Xie, Li, Dollár, Girshick; FAIR, 2021; CVPR 2022).

Chapters 4 (the model) and 5 (its loss). Encoder: a ViT that sees only the visible patches
(plus a cls token). Decoder: a lighter transformer that gets the encoded visible tokens plus
one shared, learned mask token at every removed position, all with position embeddings, and
predicts the pixels of every patch. Loss: mean squared error on the removed patches only,
against per-patch normalized pixels when `norm_pix_loss` is set (the paper's best target).

Attribute names equal the official release's state-dict keys, so its checkpoints load with
`load_state_dict(..., strict=True)`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .masking import random_masking
from .patches import patchify
from .pos_embed import sincos_2d
from .vit import LAYER_NORM_EPS, Block, ViTEncoder

NORM_PIX_EPS = 1e-6  # added to a patch's variance before dividing, as the official code


def normalize_patches(patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-patch normalization, the `norm_pix_loss` target (chapter 5): (N, L, p*p*C) ->
    (normalized patches, mean (N, L, 1), std (N, L, 1)); `normalized * std + mean` undoes
    it. The variance is the unbiased one, as in the official code."""
    mean = patches.mean(dim=-1, keepdim=True)
    std = (patches.var(dim=-1, keepdim=True) + NORM_PIX_EPS) ** 0.5
    return (patches - mean) / std, mean, std


@dataclass(frozen=True)
class MAEConfig:
    """An MAE architecture (chapter 4): the encoder ViT, the decoder and the loss target, named
    as the official code's `MaskedAutoencoderViT` arguments (plus the LayerNorm eps and the
    Table 1c ablation flag). Presets are instances (`MODEL_PRESETS`); `replace` derives one.
    The defaults are the paper's ViT-L/16 with its 8-block, 512-d decoder."""

    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    mlp_ratio: float = 4.0
    norm_pix_loss: bool = False
    layer_norm_eps: float = LAYER_NORM_EPS
    encoder_mask_token: bool = False  # Table 1c's ablation, not MAE: `EncoderMaskTokenMAE`

    @property
    def num_patches(self) -> int:
        return (self.img_size // self.patch_size) ** 2

    def replace(self, **changes: Any) -> MAEConfig:
        """This architecture with some fields changed, e.g. `.replace(norm_pix_loss=True)`."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"MAEConfig has no field {sorted(unknown)}; its fields are "
                             f"{[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **changes)

    def encoder_kwargs(self) -> dict[str, Any]:
        """The encoder's architecture as `VisionTransformer` arguments (chapter 7)."""
        return dict(img_size=self.img_size, patch_size=self.patch_size, in_chans=self.in_chans,
                    embed_dim=self.embed_dim, depth=self.depth, num_heads=self.num_heads,
                    mlp_ratio=self.mlp_ratio)


class MaskedAutoencoderViT(ViTEncoder):
    """MAE (chapter 4): the shared ViT encoder on visible patches, a light decoder, and the
    loss on removed patches. Built from an `MAEConfig` (default: ViT-L/16), with fields
    changed by keyword: `MaskedAutoencoderViT(MODEL_PRESETS["vit_mini_patch4"],
    norm_pix_loss=True)`. `fused_attention` picks the attention kernel (`vit.Attention`)."""

    def __init__(self, config: MAEConfig | None = None, *, fused_attention: bool = True,
                 **changes: Any) -> None:
        c = (config or MAEConfig()).replace(**changes)
        if c.encoder_mask_token and not isinstance(self, EncoderMaskTokenMAE):
            raise ValueError("encoder_mask_token=True is the 'w/ [M]' ablation, a model of its "
                             "own: build it with build_mae(config) or EncoderMaskTokenMAE")
        # ---- encoder: patches + fixed positions -> mask -> cls + visible tokens -> ViT blocks
        super().__init__(c.img_size, c.patch_size, c.in_chans, c.embed_dim, c.depth,
                         c.num_heads, c.mlp_ratio, c.layer_norm_eps,
                         fused_attention=fused_attention)
        self.config = c  # saved with checkpoints, so they can rebuild the model
        self.patch_size, self.in_chans = c.patch_size, c.in_chans
        self.norm_pix_loss = c.norm_pix_loss
        # True when loaded from an encoder-only checkpoint: there is no decoder to reconstruct.
        self.encoder_only = False

        # ---- decoder: project -> insert mask tokens -> unshuffle -> positions -> blocks -> pixels
        self.decoder_embed = nn.Linear(c.embed_dim, c.decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_embed_dim))  # one, shared
        self.register_buffer("decoder_pos_embed", sincos_2d(
            c.decoder_embed_dim, self.patch_embed.grid_size, cls_token=True)[None])
        self.decoder_blocks = nn.ModuleList(
            Block(c.decoder_embed_dim, c.decoder_num_heads, c.mlp_ratio, c.layer_norm_eps,
                  fused_attention=fused_attention)
            for _ in range(c.decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(c.decoder_embed_dim, eps=c.layer_norm_eps)
        self.decoder_pred = nn.Linear(c.decoder_embed_dim, c.patch_size**2 * c.in_chans)

        self.init_weights()
        nn.init.normal_(self.mask_token, std=0.02)

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """latent (N, 1 + K, D) -> predicted pixels of every patch (N, L, p*p*C)."""
        x = self.decoder_embed(latent)  # (N, 1 + K, Dd)
        n, length = ids_restore.shape
        mask_tokens = self.mask_token.expand(n, length - (x.shape[1] - 1), -1)  # (N, L-K, Dd)
        x_ = torch.cat([x[:, 1:], mask_tokens], dim=1)  # (N, L, Dd) in shuffled order
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # in order
        return self.predict_pixels(torch.cat([x[:, :1], x_], dim=1))

    def predict_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder tokens in image order, cls first (N, 1 + L, Dd) -> pixels (N, L, p*p*C):
        positions, the decoder blocks, its norm, the linear prediction; the cls row dropped."""
        x = x + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]

    def patch_targets(self, imgs: torch.Tensor) -> torch.Tensor:
        """What the decoder learns to predict (chapter 5): (N, L, p*p*C) pixels, normalized
        per patch (`normalize_patches`) when `norm_pix_loss` is set."""
        target = patchify(imgs, self.patch_size)
        return normalize_patches(target)[0] if self.norm_pix_loss else target

    def forward_loss(
        self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Mean squared error per patch, averaged over the removed patches only (chapter 5).

        With no removed patch (mask_ratio 0) there is nothing to reconstruct and the loss is 0.
        """
        per_patch = ((pred - self.patch_targets(imgs)) ** 2).mean(dim=-1)  # (N, L)
        return (per_patch * mask).sum() / mask.sum().clamp(min=1)

    def forward(
        self, imgs: torch.Tensor, mask_ratio: float = 0.75, noise: torch.Tensor | None = None,
        loss_on_all: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (loss, pred (N, L, p*p*C), mask (N, L) with 1 = removed). With
        `loss_on_all` the loss scores every patch, visible ones too: a variant the paper
        finds worse (chapter 5), not MAE's loss."""
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, noise)
        pred = self.forward_decoder(latent, ids_restore)
        scored = torch.ones_like(mask) if loss_on_all else mask
        return self.forward_loss(imgs, pred, scored), pred, mask


class EncoderMaskTokenMAE(MaskedAutoencoderViT):
    """The paper's "encoder w/ [M]" ablation (Table 1c), not MAE: removed patches are not
    dropped but replaced, in the encoder, by a learned mask token (plus their position), so
    the encoder sees all L positions and the decoder inserts nothing. It holds no decoder mask
    token: a parameter no loss reaches would make DistributedDataParallel wait for its
    gradient. Built by `build_mae` when the config's `encoder_mask_token` is set. The
    ablations appendix."""

    def __init__(self, config: MAEConfig | None = None, *, fused_attention: bool = True,
                 **changes: Any) -> None:
        super().__init__((config or MAEConfig()).replace(encoder_mask_token=True, **changes),
                         fused_attention=fused_attention)
        del self.mask_token
        self.encoder_mask_token = nn.Parameter(torch.zeros(1, 1, self.config.embed_dim))
        nn.init.normal_(self.encoder_mask_token, std=0.02)

    def forward_encoder(self, imgs: torch.Tensor, mask_ratio: float = 0.0,
                        noise: torch.Tensor | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """As MAE's, but latent is (N, 1 + L, D): every position, in image order."""
        x = self.embed(imgs)  # (N, L, D)
        _, mask, ids_restore = random_masking(x, mask_ratio, noise)
        removed = mask.bool().unsqueeze(-1)  # (N, L, 1)
        x = torch.where(removed, self.encoder_mask_token + self.pos_embed[:, 1:], x)
        return self.forward_blocks(x), mask, ids_restore

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        return self.predict_pixels(self.decoder_embed(latent))  # nothing to insert


def build_mae(config: MAEConfig, fused_attention: bool = True) -> MaskedAutoencoderViT:
    """The model a config describes: `MaskedAutoencoderViT`, or `EncoderMaskTokenMAE` for
    Table 1c's ablation. Chapter 4."""
    model = EncoderMaskTokenMAE if config.encoder_mask_token else MaskedAutoencoderViT
    return model(config, fused_attention=fused_attention)


# Model architectures by name. The paper's three use a 512-d, 8-block decoder with 16 heads.
MODEL_PRESETS: dict[str, MAEConfig] = {
    # 128-d, 4 blocks on 4x4 patches of 32x32 images, a one-block decoder: learns features
    # in a CPU minute or two (the chapters' shared model; chosen by a measured sweep,
    # benchmarks/README.md).
    "vit_mini_patch4": MAEConfig(img_size=32, patch_size=4, embed_dim=128, depth=4,
                                 num_heads=4, decoder_embed_dim=64, decoder_depth=1,
                                 decoder_num_heads=4),
    # CIFAR scale: ViT-Tiny encoder (192-d, 12 blocks, 3 heads) on 8x8 patches of 4x4 pixels.
    "vit_tiny_patch4": MAEConfig(img_size=32, patch_size=4, embed_dim=192, depth=12,
                                 num_heads=3, decoder_embed_dim=128, decoder_depth=4,
                                 decoder_num_heads=4),
    "vit_base_patch16": MAEConfig(embed_dim=768, depth=12, num_heads=12),
    "vit_large_patch16": MAEConfig(),  # the defaults: the paper's ViT-L/16
    "vit_huge_patch14": MAEConfig(patch_size=14, embed_dim=1280, depth=32, num_heads=16),
}


def mae_from_preset(name: str, **overrides: Any) -> MaskedAutoencoderViT:
    """Build a `MaskedAutoencoderViT` from `MODEL_PRESETS` (chapter 4), e.g.
    `mae_from_preset("vit_mini_patch4")`. Keyword arguments override the preset's (e.g.
    `norm_pix_loss=True`)."""
    if name not in MODEL_PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(MODEL_PRESETS)}")
    return build_mae(MODEL_PRESETS[name].replace(**overrides))
