"""The photographs the chapters show (chapters 2 and 8), and the `photos` dataset made of
their crops. They ship inside installed packages (matplotlib, scikit-image): nothing to
download.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .data import IMAGENET_MEAN, IMAGENET_STD, normalize
from .runtime import derive_seed


def _photo_paths() -> dict[str, Path]:
    import matplotlib
    import skimage

    skimage_data = Path(skimage.__file__).parent / "data"
    return {
        "grace hopper": Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
        "cat": skimage_data / "chelsea.png",
        "coffee": skimage_data / "coffee.png",
        "astronaut": skimage_data / "astronaut.png",
        "rocket": skimage_data / "rocket.jpg",
    }


PHOTOS = ("grace hopper", "cat", "coffee", "astronaut", "rocket")


def _read_photo(name: str) -> torch.Tensor:
    """A shipped photograph at its full resolution: (3, H, W) with values in [0, 1]."""
    paths = _photo_paths()
    if name not in paths:
        raise ValueError(f"unknown photo {name!r}; choose one of {list(PHOTOS)}")
    path = paths[name]
    if not path.exists():
        raise FileNotFoundError(f"the photograph {name!r} is missing at {path}; reinstall the "
                                "package that ships it (pip install --force-reinstall "
                                "matplotlib scikit-image)")
    img = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(img).permute(2, 0, 1)


def _resize(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(C, H, W) in [0, 1] -> (C, *size), bilinear with antialiasing (no aliasing when
    shrinking a photograph)."""
    return F.interpolate(img[None], size=size, mode="bilinear", antialias=True,
                         align_corners=False)[0].clamp(0, 1)


def load_photo(name: str, size: int = 224) -> torch.Tensor:
    """A real photograph that ships inside an installed package (matplotlib, scikit-image),
    centre-cropped to a square and resized: (1, 3, size, size) with values in [0, 1]. Chapter 2."""
    img = _read_photo(name)
    _, h, w = img.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return _resize(img[:, top:top + side, left:left + side], (size, size))[None]


def sample_photo(size: int = 224) -> torch.Tensor:
    """Grace Hopper's portrait (matplotlib's sample photograph): (1, 3, size, size) in [0, 1].
    Chapter 2."""
    return load_photo("grace hopper", size)


def demo_photos(size: int = 224) -> tuple[torch.Tensor, tuple[str, ...]]:
    """Every shipped photograph, ready for an ImageNet-trained MAE: normalized with ImageNet
    statistics, (5, 3, size, size), with their names. Chapter 8."""
    imgs = torch.cat([load_photo(name, size) for name in PHOTOS])
    return normalize(imgs, IMAGENET_MEAN, IMAGENET_STD), PHOTOS


# ---------------------------------------------------------------------------------------------
# The photo-crops dataset

# The test split's photograph: no training crop comes from it, so the test split measures
# how a model does on a photograph it never saw.
PHOTO_HELD_OUT = "cat"
# Before cropping, each photograph is shrunk so that its short side is one of these lengths
# (16 steps from 32 to 128 pixels, equally often): a 32-pixel crop then shows anything from
# the whole scene to a quarter of its height, object-scale structure rather than texture.
# (At the smallest sizes a photograph has few distinct crops; augmentation varies them.)
PHOTO_SHORT_SIDES = tuple(round(32 * 4 ** (k / 15)) for k in range(16))
PHOTO_TEST_SIZE = 2_000


def make_photo_crops(num_crops: int, seed: int = 0, size: int = 32,
                     split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """`num_crops` random `size`x`size` crops of the shipped photographs: (N, 3, size, size)
    uint8, and (N,) labels, each crop's photograph as its index in `PHOTOS`.

    A crop picks a photograph (equally often), a short side from `PHOTO_SHORT_SIDES` (the
    photograph is shrunk to it, keeping its aspect) and a position, all uniformly at random.
    The "train" split crops the photographs other than `PHOTO_HELD_OUT`, the "test" split
    crops only that one: the two share no pixel. The same (num_crops, seed, split) always
    gives the same crops, and a larger `num_crops` extends a smaller one. Chapter 8."""
    if num_crops < 1:
        raise ValueError(f"num_crops must be at least 1, got {num_crops}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    names = [p for p in PHOTOS if (p == PHOTO_HELD_OUT) == (split == "test")]
    pyramid = []  # pyramid[i][k]: photograph names[i] with short side PHOTO_SHORT_SIDES[k]
    for name in names:
        img = _read_photo(name)
        h, w = img.shape[1:]
        levels = []
        for short in PHOTO_SHORT_SIDES:
            scale = max(short, size) / min(h, w)
            shape = (max(size, round(h * scale)), max(size, round(w * scale)))
            levels.append((_resize(img, shape) * 255).round().to(torch.uint8))
        pyramid.append(levels)
    # One row of four uniform numbers per crop (photograph, size, top, left), drawn row by
    # row: the first n crops do not depend on how many are drawn.
    g = torch.Generator().manual_seed(derive_seed(seed, f"photos-{split}"))
    u = torch.rand(num_crops, 4, generator=g, dtype=torch.float64)

    def pick(value: float, count: int) -> int:
        return min(int(value * count), count - 1)

    images = torch.empty(num_crops, 3, size, size, dtype=torch.uint8)
    labels = torch.empty(num_crops, dtype=torch.long)
    for i, (a, b, c, d) in enumerate(u.tolist()):
        photo = pick(a, len(names))
        level = pyramid[photo][pick(b, len(PHOTO_SHORT_SIDES))]
        top = pick(c, level.shape[1] - size + 1)
        left = pick(d, level.shape[2] - size + 1)
        images[i] = level[:, top:top + size, left:left + size]
        labels[i] = PHOTOS.index(names[photo])
    return images, labels
