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

from typing import Any

import torch
from torch import nn

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


class MaskedAutoencoderViT(ViTEncoder):
    """MAE (chapter 4): the shared ViT encoder on visible patches, a light decoder, and the
    loss on removed patches (the paper's argument names)."""

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        decoder_embed_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        mlp_ratio: float = 4.0,
        norm_pix_loss: bool = False,
        layer_norm_eps: float = LAYER_NORM_EPS,
        encoder_mask_token: bool = False,
    ) -> None:
        # ---- encoder: patches + fixed positions -> mask -> cls + visible tokens -> ViT blocks
        super().__init__(img_size, patch_size, in_chans, embed_dim, depth, num_heads,
                         mlp_ratio, layer_norm_eps)
        # The constructor's arguments, kept so checkpoints and conversions can rebuild the model.
        self.config = dict(
            img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim,
            depth=depth, num_heads=num_heads, decoder_embed_dim=decoder_embed_dim,
            decoder_depth=decoder_depth, decoder_num_heads=decoder_num_heads,
            mlp_ratio=mlp_ratio, norm_pix_loss=norm_pix_loss, layer_norm_eps=layer_norm_eps,
            encoder_mask_token=encoder_mask_token,
        )
        self.patch_size, self.in_chans = patch_size, in_chans
        self.norm_pix_loss = norm_pix_loss
        # True when loaded from an encoder-only checkpoint: there is no decoder to reconstruct.
        self.encoder_only = False
        self.norm = nn.LayerNorm(embed_dim, eps=layer_norm_eps)
        # Ablation only (Table 1c, "w/ [M]"): the encoder gets a mask token at removed patches.
        self.encoder_mask_token = (nn.Parameter(torch.zeros(1, 1, embed_dim))
                                   if encoder_mask_token else None)

        # ---- decoder: project -> insert mask tokens -> unshuffle -> positions -> blocks -> pixels
        grid = self.patch_embed.grid_size
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        # One learned token for every removed position. The w/ [M] ablation has its mask tokens
        # in the encoder instead, so it holds no decoder token: a parameter no loss reaches
        # would make DistributedDataParallel fail (it waits for every parameter's gradient).
        self.mask_token = (None if encoder_mask_token
                           else nn.Parameter(torch.zeros(1, 1, decoder_embed_dim)))
        self.register_buffer(
            "decoder_pos_embed", sincos_2d(decoder_embed_dim, grid, cls_token=True)[None]
        )
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, layer_norm_eps)
            for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=layer_norm_eps)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size**2 * in_chans)

        self.init_weights()
        if self.mask_token is not None:
            nn.init.normal_(self.mask_token, std=0.02)
        if self.encoder_mask_token is not None:
            nn.init.normal_(self.encoder_mask_token, std=0.02)

    def encoder_config(self) -> dict[str, Any]:
        """The encoder's architecture as `VisionTransformer` arguments (chapter 7)."""
        keys = ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads",
                "mlp_ratio")
        return {k: self.config[k] for k in keys}

    def forward_encoder(
        self, imgs: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, C, H, W) -> latent (N, 1 + K, D), mask (N, L), ids_restore (N, L). With
        `encoder_mask_token` (an ablation), K = L: latent holds every position in order."""
        x, mask, ids_restore = self.forward_tokens(imgs, mask_ratio, noise,
                                                   self.encoder_mask_token)
        return self.norm(x), mask, ids_restore

    def encode(self, imgs: torch.Tensor) -> torch.Tensor:
        """The encoder on every patch, no masking: (N, C, H, W) -> (N, 1 + L, D), cls first.
        This is how the pre-trained encoder is used downstream (features, classification)."""
        return self.norm(self.forward_tokens(imgs)[0])

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """latent (N, 1 + K, D) -> predicted pixels of every patch (N, L, p*p*C)."""
        x = self.decoder_embed(latent)  # (N, 1 + K, Dd)
        n, length = ids_restore.shape
        dim = x.shape[-1]
        if self.mask_token is not None:  # MAE: mask tokens go in here, not in the encoder
            mask_tokens = self.mask_token.expand(n, length - (x.shape[1] - 1), -1)  # (N, L-K, Dd)
            x_ = torch.cat([x[:, 1:], mask_tokens], dim=1)  # (N, L, Dd) in shuffled order
            x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).expand(-1, -1, dim))  # in order
            x = torch.cat([x[:, :1], x_], dim=1)
        x = x + self.decoder_pos_embed  # (N, 1 + L, Dd)
        for block in self.decoder_blocks:
            x = block(x)
        x = self.decoder_pred(self.decoder_norm(x))  # (N, 1 + L, p*p*C)
        return x[:, 1:]  # drop the cls token

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


# Model architectures by name. The paper's three use a 512-d, 8-block decoder with 16 heads.
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    # 128-d, 4 blocks on 4x4 patches of 32x32 images, a one-block decoder: learns features
    # in a CPU minute or two (the chapters' shared model; chosen by a measured sweep,
    # benchmarks/README.md).
    "vit_mini_patch4": dict(img_size=32, patch_size=4, embed_dim=128, depth=4, num_heads=4,
                            decoder_embed_dim=64, decoder_depth=1, decoder_num_heads=4),
    # CIFAR scale: ViT-Tiny encoder (192-d, 12 blocks, 3 heads) on 8x8 patches of 4x4 pixels.
    "vit_tiny_patch4": dict(img_size=32, patch_size=4, embed_dim=192, depth=12, num_heads=3,
                            decoder_embed_dim=128, decoder_depth=4, decoder_num_heads=4),
    "vit_base_patch16": dict(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12,
                             decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16),
    "vit_large_patch16": dict(img_size=224, patch_size=16, embed_dim=1024, depth=24,
                              num_heads=16, decoder_embed_dim=512, decoder_depth=8,
                              decoder_num_heads=16),
    "vit_huge_patch14": dict(img_size=224, patch_size=14, embed_dim=1280, depth=32, num_heads=16,
                             decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16),
}


def mae_from_preset(name: str, **overrides: Any) -> MaskedAutoencoderViT:
    """Build a `MaskedAutoencoderViT` from `MODEL_PRESETS` (chapter 4), e.g.
    `mae_from_preset("vit_mini_patch4")`. Keyword arguments override the preset's (e.g.
    `norm_pix_loss=True`)."""
    if name not in MODEL_PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(MODEL_PRESETS)}")
    return MaskedAutoencoderViT(**{**MODEL_PRESETS[name], **overrides})
