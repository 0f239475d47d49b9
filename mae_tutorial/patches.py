"""Images as sequences of patches.

MAE works on a sequence of non-overlapping square patches, each flattened to a vector with
the channel last: pixel (p, q) of channel c sits at index (p * patch_size + q) * C + c.
That is the layout of the official MAE code, so predictions and targets line up with it.
"""

from __future__ import annotations

import torch
from einops import rearrange


def check_images(imgs: torch.Tensor, in_chans: int | None = None,
                 img_size: int | None = None) -> None:
    """Fail, saying how to fix it, on images a model cannot take: not a batch (N, C, H, W),
    not `in_chans` channels, or not `img_size` x `img_size` (chapters 1 to 3)."""
    if imgs.ndim != 4:
        raise ValueError(
            f"expected a batch of images of shape (N, C, H, W), got rank {imgs.ndim} with "
            f"shape {tuple(imgs.shape)}; add a batch dimension with imgs.unsqueeze(0)"
        )
    _, c, h, w = imgs.shape
    if in_chans is not None and c != in_chans:
        raise ValueError(
            f"the model expects {in_chans} channels, got {c}; convert the images "
            f"(e.g. grayscale to RGB with imgs.expand(-1, 3, -1, -1)) or build the model "
            f"with in_chans={c}"
        )
    if img_size is not None and (h, w) != (img_size, img_size):
        raise ValueError(
            f"the model expects {img_size}x{img_size} images, got {h}x{w}; "
            f"resize the images or build the model with img_size={h}"
        )


def _check_patches_fit(imgs: torch.Tensor, patch_size: int) -> None:
    check_images(imgs)
    h, w = imgs.shape[-2:]
    if h % patch_size or w % patch_size:
        raise ValueError(
            f"image size {h}x{w} is not divisible by the patch size {patch_size}; "
            f"resize or crop the images to a multiple of {patch_size}"
        )


def patchify(imgs: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into flattened patches: (N, C, H, W) -> (N, L, p*p*C), L = (H/p)(W/p).
    Chapters 1 and 2."""
    _check_patches_fit(imgs, patch_size)
    return rearrange(imgs, "n c (h p) (w q) -> n (h w) (p q c)", p=patch_size, q=patch_size)


def unpatchify(
    x: torch.Tensor,
    patch_size: int,
    channels: int = 3,
    grid_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Put flattened patches back together: (N, L, p*p*C) -> (N, C, H, W).

    `grid_size` is (rows, cols) of the patch grid; by default the grid is square. Chapter 2.
    """
    if x.ndim != 3:
        raise ValueError(
            f"expected patches of shape (N, L, patch_size**2 * C), got shape {tuple(x.shape)}"
        )
    n, length, dim = x.shape
    if dim != patch_size * patch_size * channels:
        raise ValueError(
            f"each patch has {dim} values, but patch_size={patch_size} and channels={channels} "
            f"need {patch_size * patch_size * channels}; pass the patch size and channel count "
            "the patches were made with"
        )
    if grid_size is None:
        side = round(length**0.5)
        if side * side != length:
            raise ValueError(
                f"{length} patches do not form a square grid; pass grid_size=(rows, cols)"
            )
        grid_size = (side, side)
    rows, cols = grid_size
    if rows * cols != length:
        raise ValueError(f"grid_size {grid_size} holds {rows * cols} patches, not {length}")
    return rearrange(
        x, "n (h w) (p q c) -> n c (h p) (w q)", h=rows, w=cols, p=patch_size, q=patch_size
    )


def mask_to_pixels(mask: torch.Tensor, patch_size: int,
                   grid_size: tuple[int, int] | None = None) -> torch.Tensor:
    """Spread a per-patch mask over the pixels: (N, L) -> (N, 1, H, W), each pixel taking the
    value of its patch (1 = removed, as `random_masking` returns it). Chapters 1 and 2."""
    per_pixel = mask[..., None].expand(-1, -1, patch_size * patch_size)  # (N, L, p*p)
    return unpatchify(per_pixel, patch_size, channels=1, grid_size=grid_size)
