"""Images for the book: a real photograph that ships with matplotlib, normalized for MAE."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# ImageNet statistics: MAE normalizes its inputs with them (the official checkpoints expect it).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(imgs: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """(N, C, H, W) in [0, 1] -> per-channel standardized."""
    m = torch.tensor(mean, dtype=imgs.dtype, device=imgs.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=imgs.dtype, device=imgs.device).view(1, -1, 1, 1)
    return (imgs - m) / s


def denormalize(imgs: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """Undo `normalize`: back to [0, 1] pixel values (not clipped)."""
    m = torch.tensor(mean, dtype=imgs.dtype, device=imgs.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=imgs.dtype, device=imgs.device).view(1, -1, 1, 1)
    return imgs * s + m


def sample_photo(size: int = 224) -> torch.Tensor:
    """A real photograph (Grace Hopper, shipped in matplotlib's sample data), centre-cropped
    to a square and resized: (1, 3, size, size) with values in [0, 1]."""
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.exists():
        raise FileNotFoundError(f"matplotlib's sample photograph is missing at {path}; "
                                "reinstall matplotlib (pip install --force-reinstall matplotlib)")
    img = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    h, w, _ = img.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    img = torch.from_numpy(img[top:top + side, left:left + side]).permute(2, 0, 1)[None]
    return F.interpolate(img, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False).clamp(0, 1)
