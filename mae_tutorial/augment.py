"""The paper's pre-training augmentation (chapter 6): random resized crop (the paper names
only the crop; scale 0.2-1 is the official code's) and horizontal flip, then normalization;
nothing else (masking itself acts as augmentation).

Two implementations with the same semantics: torchvision transforms per image on the
`DataLoader` path, and a batched version that runs on the device, for datasets that fit in
device memory (all of CIFAR-10 does: 150 MB as uint8).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .data import ImageSet, normalize

# ---------------------------------------------------------------------------------------------
# Augmentation 1: torchvision transforms, per image, on the DataLoader path


def loader_transform(mean, std, size: int = 32, scale: tuple[float, float] = (0.2, 1.0)):
    """The paper's pre-training augmentation as torchvision transforms on uint8 CHW tensors.
    Chapter 6."""
    from torchvision.transforms import v2

    return v2.Compose([
        v2.RandomResizedCrop(size, scale=scale, interpolation=v2.InterpolationMode.BICUBIC,
                             antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean, std),
    ])


class AugmentedImages(torch.utils.data.Dataset):
    """Map-style dataset over an `ImageSet`; indexed by (index, seed) pairs so that every
    augmentation is reproducible, whatever the number of workers (see `StepBatchSampler`).
    Chapter 6."""

    def __init__(self, data: ImageSet, transform) -> None:
        self.data, self.transform = data, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            img = self.transform(self.data.images[index])
        return img, int(self.data.labels[index])


# ---------------------------------------------------------------------------------------------
# Augmentation 2: the same, batched, on the device


def sample_crop_boxes(n: int, height: int, width: int, scale=(0.2, 1.0),
                      ratio=(3 / 4, 4 / 3), generator: torch.Generator | None = None
                      ) -> torch.Tensor:
    """Random-resized-crop boxes (top, left, h, w) for n images, (n, 4) float on the CPU, drawn
    as torchvision does: 10 tries of area in `scale` and log-uniform aspect `ratio`, first fit
    wins, else the largest centred crop within the ratio bounds. Chapter 6."""
    tries = 10
    area = height * width

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator)

    target = area * (scale[0] + (scale[1] - scale[0]) * rand(n, tries))
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * rand(n, tries)
    aspect = torch.exp(log_r)
    w = torch.sqrt(target * aspect).round()
    h = torch.sqrt(target / aspect).round()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.full((n,), -1))
    pick = first.clamp(min=0).unsqueeze(1)
    w, h = w.gather(1, pick).squeeze(1), h.gather(1, pick).squeeze(1)
    top = torch.floor(rand(n) * (height - h + 1))
    left = torch.floor(rand(n) * (width - w + 1))
    # fallback: whole image, clipped to the ratio bounds (for square images: the whole image)
    in_ratio = width / height
    fw = float(width if ratio[0] <= in_ratio <= ratio[1] else
               (round(height * ratio[1]) if in_ratio > ratio[1] else width))
    fh = float(height if ratio[0] <= in_ratio <= ratio[1] else
               (round(width / ratio[0]) if in_ratio < ratio[0] else height))
    none = first < 0
    h = torch.where(none, torch.full_like(h, fh), h)
    w = torch.where(none, torch.full_like(w, fw), w)
    top = torch.where(none, torch.full_like(top, (height - fh) // 2), top)
    left = torch.where(none, torch.full_like(left, (width - fw) // 2), left)
    return torch.stack([top, left, h, w], dim=1)


def resized_crop_batch(imgs: torch.Tensor, boxes: torch.Tensor, size: int,
                       flip: torch.Tensor | None = None, mode: str = "bicubic") -> torch.Tensor:
    """Crop each image to its box (top, left, h, w) and resize to size x size, optionally
    mirrored, in one `grid_sample` call. imgs: (N, C, H, W) float; returns (N, C, size, size).
    Chapter 6."""
    n, _, height, width = imgs.shape
    top, left, h, w = boxes.to(imgs.dtype).unbind(1)
    # Output pixel k samples the box at pixel coordinate start + (k + 0.5) * extent / size - 0.5
    # (pixel centres at integers, as torchvision's resize with align_corners=False), clamped to
    # the box so that only the crop's own pixels are read; then mapped to grid_sample's [-1, 1].
    steps = (torch.arange(size, device=imgs.device, dtype=imgs.dtype) + 0.5) / size  # (size,)

    def coords(start: torch.Tensor, extent: torch.Tensor, full: int) -> torch.Tensor:
        c = start[:, None] + extent[:, None] * steps - 0.5  # (N, size)
        c = torch.minimum(torch.maximum(c, start[:, None]), (start + extent - 1)[:, None])
        return (c + 0.5) / full * 2 - 1

    xs, ys = coords(left, w, width), coords(top, h, height)
    if flip is not None:
        xs = torch.where(flip[:, None], xs.flip(1), xs)
    grid = torch.stack([xs[:, None, :].expand(n, size, size),
                        ys[:, :, None].expand(n, size, size)], dim=-1)
    return F.grid_sample(imgs, grid, mode=mode, padding_mode="border", align_corners=False)


class DeviceAugment:
    """The paper's augmentation for a whole batch at once, on the batch's device.

    `sample(n)` draws the random crop boxes and flips, `apply` uses them; calling the object
    does both. Sampling for a global batch and applying to one process's share is how several
    processes augment exactly as one would. Chapter 6.
    """

    def __init__(self, mean, std, size: int = 32, scale: tuple[float, float] = (0.2, 1.0)):
        self.mean, self.std, self.size, self.scale = mean, std, size, scale
        self._on_device: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def sample(self, n: int, height: int, width: int, generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Crop boxes (n, 4) and flips (n,) drawn on the CPU (from `generator`, a CPU
        generator, or the global CPU stream), then copied to `device`: the same draws
        whatever the device."""
        boxes = sample_crop_boxes(n, height, width, self.scale, generator=generator)
        flip = torch.rand(n, generator=generator) < 0.5
        return boxes.to(device), flip.to(device)

    def apply(self, images_uint8: torch.Tensor, boxes: torch.Tensor,
              flip: torch.Tensor) -> torch.Tensor:
        imgs = images_uint8.float() / 255
        out = resized_crop_batch(imgs, boxes, self.size, flip).clamp(0, 1)
        return normalize(out, *self._stats(out.device))

    def _stats(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        # mean and std as tensors on the device, made once (not copied there per batch)
        if device not in self._on_device:
            self._on_device[device] = (torch.tensor(self.mean, device=device),
                                       torch.tensor(self.std, device=device))
        return self._on_device[device]

    def __call__(self, images_uint8: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        n, _, h, w = images_uint8.shape
        boxes, flip = self.sample(n, h, w, generator, images_uint8.device)
        return self.apply(images_uint8, boxes, flip)
