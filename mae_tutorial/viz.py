"""Figure helpers the chapters share: image grids, masked images, training curves."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch

from .patches import patchify, unpatchify


def to_numpy_image(img: torch.Tensor):
    """(C, H, W) or (1, C, H, W) tensor in [0, 1] -> (H, W, C) NumPy array, clipped."""
    if img.ndim == 4:
        img = img[0]
    return img.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()


def mask_images(imgs: torch.Tensor, mask: torch.Tensor, patch_size: int,
                fill: float = 0.5) -> torch.Tensor:
    """Paint the removed patches (mask == 1) with a flat grey: what the encoder does not see."""
    patches = patchify(imgs, patch_size)  # (N, L, p*p*C)
    keep = (1 - mask).unsqueeze(-1).to(patches.dtype)  # (N, L, 1)
    patches = patches * keep + fill * (1 - keep)
    grid = (imgs.shape[-2] // patch_size, imgs.shape[-1] // patch_size)
    return unpatchify(patches, patch_size, imgs.shape[1], grid)


def show_images(imgs: Sequence[torch.Tensor] | torch.Tensor, titles: Sequence[str] | None = None,
                ncols: int | None = None, size: float = 2.5, suptitle: str | None = None):
    """Show images in [0, 1] side by side, one panel each; returns the figure."""
    imgs = list(imgs)
    ncols = ncols or len(imgs)
    nrows = -(-len(imgs) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(imgs):
            ax.imshow(to_numpy_image(imgs[i]))
            if titles is not None:
                ax.set_title(titles[i], fontsize=10)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def draw_patch_grid(ax, img_size: int, patch_size: int, color: str = "white") -> None:
    """Draw the patch boundaries over an image already shown on `ax`."""
    for k in range(0, img_size + 1, patch_size):
        ax.axhline(k - 0.5, color=color, linewidth=0.6)
        ax.axvline(k - 0.5, color=color, linewidth=0.6)


def plot_metrics(records: Sequence[dict], ax=None, title: str = "pre-training"):
    """Loss (log scale) and learning rate against the step, from `train.read_metrics`."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    steps = [r["step"] for r in records]
    ax.plot(steps, [r["loss"] for r in records], label="loss (masked patches)")
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    lr_ax = ax.twinx()
    lr_ax.plot(steps, [r["lr"] for r in records], color="tab:orange", alpha=0.6, label="lr")
    lr_ax.set_ylabel("learning rate")
    lines = ax.get_lines() + lr_ax.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="upper right")
    ax.figure.tight_layout()
    return ax
