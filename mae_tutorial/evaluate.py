"""Measuring what an MAE learned.

Reconstruction: the masked-patch loss on held-out images, next to the loss of the trivial
prediction "all zeros" (for normalized targets, the mean of each patch), so the number means
something on its own: a ratio of 1 is no better than predicting nothing.
"""

from __future__ import annotations

import torch

from .data import ImageSet, normalize
from .mae import MaskedAutoencoderViT


@torch.no_grad()
def reconstruction_score(model: MaskedAutoencoderViT, data: ImageSet, num_images: int = 1000,
                         mask_ratio: float = 0.75, batch_size: int = 250,
                         seed: int = 0) -> dict[str, float]:
    """Masked-patch loss of `model` on the first `num_images` images of `data` (no augmentation)
    and the loss of predicting zeros for the same masks; returns both and their ratio."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    total = zero = 0.0
    n = min(num_images, len(data))
    for start in range(0, n, batch_size):
        imgs = data.images[start:start + batch_size].float().div(255)
        imgs = normalize(imgs, data.mean, data.std).to(device)
        noise = torch.rand(len(imgs), model.num_patches, generator=g).to(device)
        loss, pred, mask = model(imgs, mask_ratio, noise)
        total += loss.item() * len(imgs)
        zero += model.forward_loss(imgs, torch.zeros_like(pred), mask).item() * len(imgs)
    model.train(was_training)
    return {"loss": total / n, "zero_loss": zero / n, "ratio": total / zero}
