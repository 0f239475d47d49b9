"""Vision Transformer building blocks (Dosovitskiy et al., 2021), as MAE uses them (chapter 3).

Parameter names follow the official MAE release (which uses timm's ViT), so that its
checkpoints load into these modules unchanged: `patch_embed.proj`, `blocks.N.norm1`,
`blocks.N.attn.qkv`, `blocks.N.attn.proj`, `blocks.N.norm2`, `blocks.N.mlp.fc1`, `.fc2`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .masking import random_masking
from .patches import check_images
from .pos_embed import sincos_2d

LAYER_NORM_EPS = 1e-6  # the official MAE code's LayerNorm eps (PyTorch's default is 1e-5)


class PatchEmbed(nn.Module):
    """Cut an image into patches and project each to `embed_dim`: (N, C, H, W) -> (N, L, D).

    A convolution with kernel = stride = patch size is exactly a linear layer applied to every
    flattened patch. Chapter 3.
    """

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3,
                 embed_dim: int = 768) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(
                f"img_size {img_size} is not divisible by patch_size {patch_size}; choose a "
                f"patch size that divides the image size (e.g. 16 for 224, 4 for 32)"
            )
        self.img_size, self.patch_size, self.in_chans = img_size, patch_size, in_chans
        self.grid_size = img_size // patch_size
        self.num_patches = self.grid_size**2
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        check_images(imgs, self.in_chans, self.img_size)
        return rearrange(self.proj(imgs), "n d h w -> n (h w) d")


def use_fused_attention(device: torch.device, dtype: torch.dtype | None) -> bool:
    """Whether a model that trains on `device` under autocast `dtype` (None: fp32) should use
    PyTorch's fused attention kernel. Not on a CPU in bf16: there the fused kernel is slow at
    these short sequences (its backward ~10x the matrix products'), while written out the two
    products run as bf16 matmuls. Chapter 6."""
    return not (device.type == "cpu" and dtype == torch.bfloat16)


class Attention(nn.Module):
    """Multi-head self-attention with one fused projection to queries, keys and values.
    `fused` picks how softmax(q k^T / sqrt(d)) v is computed, once: PyTorch's fused kernel or
    the two products written out (the same numbers up to rounding). Chapter 3."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True,
                 fused: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.fused = num_heads, fused
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # (N, L, 3*D) -> three tensors (N, heads, L, D/heads)
        q, k, v = rearrange(self.qkv(x), "n l (three h d) -> three n h l d", three=3,
                            h=self.num_heads)
        return q, k, v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._qkv(x)
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(d)) v, fused
        else:
            out = torch.softmax((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1), dim=-1) @ v
        return self.proj(rearrange(out, "n h l d -> n l (h d)"))

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention matrix softmax(q k^T / sqrt(d)), (N, heads, L, L), for pictures."""
        q, k, _ = self._qkv(x)
        return torch.softmax(q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5, dim=-1)


class Mlp(nn.Module):
    """The transformer's feed-forward network: Linear -> GELU -> Linear. Chapter 3."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop the residual branch for a random subset of samples, scaling the
    kept ones by 1 / (1 - rate) so the expectation is unchanged. Chapter 3."""
    if rate == 0.0 or not training:
        return x
    # drawn on the CPU (from the global seed) and copied: the same samples dropped anywhere
    keep = (torch.rand(x.shape[0], *([1] * (x.ndim - 1))) >= rate).to(x.device)
    return x * keep.to(x.dtype) / (1 - rate)


class Block(nn.Module):
    """A pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x)). Chapter 3."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0,
                 eps: float = LAYER_NORM_EPS, drop_path: float = 0.0,
                 fused_attention: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, fused=fused_attention)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + drop_path(self.attn(self.norm1(x)), self.drop_path, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)


def init_vit_weights(module: nn.Module) -> None:
    """The MAE code's initialisation: xavier-uniform linears, zero biases, unit LayerNorms.
    Chapter 3."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def init_patch_embed(patch_embed: PatchEmbed) -> None:
    """Initialise the patch projection like a linear layer on flattened patches (xavier).
    Chapter 3."""
    w = patch_embed.proj.weight
    nn.init.xavier_uniform_(w.view(w.shape[0], -1))
    nn.init.zeros_(patch_embed.proj.bias)


class ViTEncoder(nn.Module):
    """The encoder that MAE, the ViT classifier and the attention maps share (chapter 3):
    patch embedding, fixed 2D sin-cos positions, a cls token, transformer blocks, a final
    LayerNorm. `forward_encoder` is the one way in.

    Subclasses add their heads, then call `init_weights`. The attribute names are the official
    release's state-dict keys (`patch_embed`, `cls_token`, `pos_embed`, `blocks`, `norm`).
    """

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int,
                 depth: int, num_heads: int, mlp_ratio: float = 4.0,
                 layer_norm_eps: float = LAYER_NORM_EPS, drop_path_rate: float = 0.0,
                 fused_attention: bool = True) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        table = sincos_2d(embed_dim, self.patch_embed.grid_size, cls_token=True)
        self.register_buffer("pos_embed", table.unsqueeze(0))  # (1, 1 + L, D), fixed
        rates = [drop_path_rate * i / max(1, depth - 1) for i in range(depth)]  # grows linearly
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, layer_norm_eps, r, fused_attention)
            for r in rates)
        self.norm: nn.Module = nn.LayerNorm(embed_dim, eps=layer_norm_eps)

    def init_weights(self) -> None:
        """The MAE code's initialisation of every layer, then the patch projection and the
        cls token; call it once all layers exist (the order of random draws is part of it)."""
        self.apply(init_vit_weights)
        init_patch_embed(self.patch_embed)
        nn.init.normal_(self.cls_token, std=0.02)

    def embed(self, imgs: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> patch tokens with their positions added, (N, L, D). Positions come
        before any masking, so every kept token knows its place."""
        return self.patch_embed(imgs) + self.pos_embed[:, 1:]

    def forward_blocks(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens (N, K, D) -> (N, 1 + K, D): the cls token (with its position) put
        first, the transformer blocks, the final norm."""
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(len(x), -1, -1)
        x = torch.cat([cls, x], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward_encoder(self, imgs: torch.Tensor, mask_ratio: float = 0.0,
                        noise: torch.Tensor | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, C, H, W) -> latent (N, 1 + K, D) after the final norm, cls first; the mask
        (N, L; 1 = removed) and `ids_restore` (N, L).

        The encoder sees only the K kept patches (`random_masking` with `mask_ratio`, or the
        order `noise` gives). With `mask_ratio` 0 and no `noise`, every patch is kept in its
        own order (K = L): the pre-trained encoder as used downstream.
        """
        x = self.embed(imgs)  # (N, L, D)
        if mask_ratio != 0 or noise is not None:
            x, mask, ids_restore = random_masking(x, mask_ratio, noise)  # (N, K, D)
        else:
            n, length, _ = x.shape
            mask = torch.zeros(n, length, device=x.device)
            ids_restore = torch.arange(length, device=x.device).expand(n, -1)
        return self.forward_blocks(x), mask, ids_restore


class VisionTransformer(ViTEncoder):
    """A ViT classifier (chapters 3 and 7): the shared encoder path, then pooling and a head.

    Pooling as the MAE paper's fine-tuning code: the normalized cls token, or with
    `global_pool=True` the mean of the patch tokens followed by its own LayerNorm (`fc_norm`,
    which replaces the final `norm`: the encoder's output is then not normalized).
    `drop_path_rate` grows linearly over the blocks.
    """

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3,
                 num_classes: int = 1000, embed_dim: int = 768, depth: int = 12,
                 num_heads: int = 12, mlp_ratio: float = 4.0, global_pool: bool = False,
                 drop_path_rate: float = 0.0, fused_attention: bool = True) -> None:
        super().__init__(img_size, patch_size, in_chans, embed_dim, depth, num_heads,
                         mlp_ratio, drop_path_rate=drop_path_rate,
                         fused_attention=fused_attention)
        self.global_pool = global_pool
        if global_pool:
            self.norm = nn.Identity()
            self.fc_norm = nn.LayerNorm(embed_dim, eps=LAYER_NORM_EPS)
        self.head = nn.Linear(embed_dim, num_classes)
        self.init_weights()

    def forward_features(self, imgs: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, D) pooled features, the input of the head."""
        x = self.forward_encoder(imgs)[0]  # (N, 1 + L, D)
        if self.global_pool:
            return self.fc_norm(x[:, 1:].mean(dim=1))
        return x[:, 0]

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(imgs))  # (N, num_classes) logits


@torch.no_grad()
def cls_attention_maps(model: ViTEncoder, imgs: torch.Tensor) -> torch.Tensor:
    """How much the cls token attends to each patch in the last block, per head:
    (N, heads, grid rows, grid cols). Rows of the attention matrix sum to 1 over cls + patches.

    The encoder runs its usual path; a hook keeps the last attention layer's input, from which
    `Attention.attention_weights` computes the matrix. Chapter 3."""
    last = model.blocks[-1].attn
    seen: list[torch.Tensor] = []
    handle = last.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    try:
        model.forward_encoder(imgs)
    finally:
        handle.remove()
    weights = last.attention_weights(seen[0])  # (N, heads, 1 + L, 1 + L)
    g = model.patch_embed.grid_size
    return weights[:, :, 0, 1:].reshape(len(imgs), -1, g, g)
