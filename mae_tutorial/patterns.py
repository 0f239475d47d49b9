"""Generated datasets where the class is a pattern, not a place (chapter 1).

The shapes of `data.make_synthetic` sit on flat backgrounds, so two images of one class are
often close pixel by pixel and a nearest-neighbour vote on raw pixels does well. The sets here
are candidates for data on which raw pixels fail: every image of a class draws its pattern or
its shapes with a random period, phase, angle, place and colours, so that on average two
images of one class are no closer in pixel space than images of two classes, while a person
names the class at a glance. How far each gets, against MAE at the chapters' budget, is
measured by `benchmarks/dataset_choice.py` (nearest neighbours still find close images of
the same class in the first two).

- `patterns`: 10 textures filling the whole image;
- `shapes on patterns`: the 10 shape classes of `make_synthetic`, each in one colour on a
  muted random texture, so the outline, not the texture, is the class;
- `scattered shapes`: three small copies of a class's shape at random places, so that two
  images of one class rarely overlap pixel for pixel.

The same (num_images, seed, split) always gives the same images; the splits share none.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .runtime import derive_seed

PATTERN_CLASSES = ("horizontal stripes", "vertical stripes", "checkerboard", "diamonds",
                   "dots", "rings", "grid", "waves", "crosshatch", "spots")


def _uniform(g: torch.Generator, n: int, lo: float, hi: float, *shape: int) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, *shape, generator=g)


def _pixel_grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    coords = torch.arange(size, dtype=torch.float32) + 0.5 - size / 2
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")  # (S, S), centred on the image
    return yy, xx


def _wave(t: torch.Tensor) -> torch.Tensor:  # one period per unit of t
    return torch.sin(2 * math.pi * t)


def _near(t: torch.Tensor) -> torch.Tensor:  # distance to the nearest integer
    return (t - t.round()).abs()


def _textures(labels: torch.Tensor, g: torch.Generator, size: int) -> torch.Tensor:
    """(n, S, S) boolean textures of class `labels`, each with its own random period (5-9
    pixels), phase, small rotation (within +-12 degrees) and, for rings, centre."""
    n = len(labels)
    yy, xx = _pixel_grid(size)
    angle = _uniform(g, n, -12, 12).mul(math.pi / 180).view(n, 1, 1)
    u = xx * torch.cos(angle) + yy * torch.sin(angle)  # (n, S, S) rotated coordinates
    v = -xx * torch.sin(angle) + yy * torch.cos(angle)
    period = _uniform(g, n, 5.0, 9.0).view(n, 1, 1)
    u = u / period + _uniform(g, n, 0, 1).view(n, 1, 1)  # in periods, random phase
    v = v / period + _uniform(g, n, 0, 1).view(n, 1, 1)
    wave, near = _wave, _near
    centre = _uniform(g, n, -0.6, 0.6, 2).mul(size)
    d = torch.hypot(xx - centre[:, 0].view(n, 1, 1), yy - centre[:, 1].view(n, 1, 1))
    spots = F.interpolate(torch.randn(n, 1, 6, 6, generator=g), size=(size, size),
                          mode="bicubic", align_corners=False)[:, 0]
    amplitude = _uniform(g, n, 0.25, 0.45).view(n, 1, 1)
    all_textures = torch.stack([
        wave(v) > 0,                                               # horizontal stripes
        wave(u) > 0,                                               # vertical stripes
        wave(u) * wave(v) > 0,                                     # checkerboard
        wave((u + v) / 2) * wave((u - v) / 2) > 0,                 # diamonds
        near(u) ** 2 + near(v) ** 2 < 0.09,                        # dots
        wave(d / period) > 0,                                      # rings
        (near(u) < 0.12) | (near(v) < 0.12),                       # grid
        wave(v + amplitude * wave(u / 2)) > 0,                     # waves
        (near((u + v) / 2) < 0.1) | (near((u - v) / 2) < 0.1),     # crosshatch
        spots > 0.3,                                               # spots
    ], dim=1)  # (n, 10, S, S)
    return all_textures[torch.arange(n), labels]


def _colours(g: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two random RGB colours per image, far apart in every channel: (n, 3) each."""
    first = _uniform(g, n, 0.0, 1.0, 3)
    second = torch.where(first > 0.5, first - _uniform(g, n, 0.35, 0.6, 3),
                         first + _uniform(g, n, 0.35, 0.6, 3))
    return first, second.clamp(0, 1)


def _paint(mask: torch.Tensor, on: torch.Tensor, off: torch.Tensor) -> torch.Tensor:
    """(n, S, S) mask and (n, 3) colours -> (n, 3, S, S) floats."""
    return torch.where(mask.unsqueeze(1), on[:, :, None, None], off[:, :, None, None])


def _chunked(num_images: int, seed: int, split: str, size: int, name: str, chunk_fn
             ) -> tuple[torch.Tensor, torch.Tensor]:
    if num_images < 1:
        raise ValueError(f"num_images must be at least 1, got {num_images}")
    images = torch.empty(num_images, 3, size, size, dtype=torch.uint8)
    labels = torch.empty(num_images, dtype=torch.long)
    chunk = 4096  # each chunk has its own stream, so memory stays small
    for start in range(0, num_images, chunk):
        n = min(chunk, num_images - start)
        g = torch.Generator().manual_seed(derive_seed(seed, f"{name}-{split}", start // chunk))
        labels[start:start + n] = torch.randint(0, 10, (n,), generator=g)
        x = chunk_fn(labels[start:start + n], g, size)
        images[start:start + n] = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    return images, labels


def make_patterns(num_images: int, seed: int = 0, size: int = 32,
                  split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """`num_images` images of 10 texture classes (`PATTERN_CLASSES`): (N, 3, S, S) uint8 and
    (N,) labels. Each image is one texture in two random colours with a random period, phase
    and slight rotation, under a soft random shading. Chapter 1."""
    def chunk(labels: torch.Tensor, g: torch.Generator, size: int) -> torch.Tensor:
        n = len(labels)
        x = _paint(_textures(labels, g, size), *_colours(g, n))
        yy, xx = _pixel_grid(size)
        tilt = _uniform(g, n, -0.15, 0.15, 2) / size  # a soft light gradient over the image
        return x + (tilt[:, 0].view(n, 1, 1) * xx + tilt[:, 1].view(n, 1, 1) * yy).unsqueeze(1)

    return _chunked(num_images, seed, split, size, "patterns", chunk)


def make_shapes_on_patterns(num_images: int, seed: int = 0, size: int = 32,
                            split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """`num_images` images of the 10 shape classes of `data.SYNTHETIC_CLASSES`, each shape in
    one random colour on a muted random texture (texture and colours drawn independently of
    the class): (N, 3, S, S) uint8 and (N,) labels. Chapter 1."""
    from .data import shape_masks

    def chunk(labels: torch.Tensor, g: torch.Generator, size: int) -> torch.Tensor:
        n = len(labels)
        inside = shape_masks(labels, g, size).unsqueeze(1)
        texture = _textures(torch.randint(0, 10, (n,), generator=g), g, size)
        light, dark = _colours(g, n)
        ground = 0.25 + 0.5 * _paint(texture, light, dark)  # muted: contrast halved
        shape_colour = torch.where(light > 0.5, _uniform(g, n, 0.0, 0.15, 3),
                                   _uniform(g, n, 0.85, 1.0, 3))  # far from the ground
        return torch.where(inside, shape_colour[:, :, None, None], ground)

    return _chunked(num_images, seed, split, size, "shapes-on-patterns", chunk)


def make_scattered_shapes(num_images: int, seed: int = 0, size: int = 32,
                          split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """`num_images` images of the 10 shape classes of `data.SYNTHETIC_CLASSES`, each showing
    three small copies of its class's shape (radius 10-16% of the side) at random places, in
    one random colour on another: (N, 3, S, S) uint8 and (N,) labels. Chapter 1."""
    from .data import shape_masks

    def chunk(labels: torch.Tensor, g: torch.Generator, size: int) -> torch.Tensor:
        n = len(labels)
        inside = torch.zeros(n, size, size, dtype=torch.bool)
        for _ in range(3):
            inside |= shape_masks(labels, g, size, radius_range=(0.10, 0.16))
        ground, ink = _colours(g, n)
        return _paint(inside, ink, ground)

    return _chunked(num_images, seed, split, size, "scattered-shapes", chunk)
