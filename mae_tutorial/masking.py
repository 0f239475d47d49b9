"""Random masking of patches, per sample, by shuffling with noise (MAE, Sec. 3).

Each sample draws one uniform noise value per patch; sorting the noise gives a random
permutation of the patches. The first `int(L * (1 - mask_ratio))` patches of that permutation
stay visible, the rest are removed. `ids_restore` is the inverse permutation, which the decoder
uses to put every token back at its original place.
"""

from __future__ import annotations

import torch


def num_visible(num_patches: int, mask_ratio: float) -> int:
    """How many of `num_patches` patches stay visible at `mask_ratio` (the official rounding).
    Chapter 2."""
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(
            f"mask_ratio must be in [0, 1), got {mask_ratio}; MAE uses 0.75 "
            "(a ratio of 1 would remove every patch)"
        )
    keep = int(num_patches * (1 - mask_ratio))
    if keep < 1:
        raise ValueError(
            f"mask_ratio {mask_ratio} leaves no visible patch out of {num_patches}; "
            f"use a ratio below {1 - 1 / num_patches:.4f}"
        )
    return keep


def random_masking(
    x: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep a random subset of tokens in every sample.

    x: (N, L, D) tokens. noise: optional (N, L) values whose ascending order decides which
    tokens stay (smallest first); pass it to make the mask deterministic.

    Returns
      x_visible:   (N, K, D) the kept tokens, K = int(L * (1 - mask_ratio)), in shuffled order
      mask:        (N, L) in the original token order, 1 = removed, 0 = visible
      ids_restore: (N, L) the inverse permutation: x_shuffled.gather(1, ids_restore) = x order
    Chapters 1 and 2.
    """
    if x.ndim != 3:
        raise ValueError(f"expected tokens of shape (N, L, D), got shape {tuple(x.shape)}")
    n, length, dim = x.shape
    keep = num_visible(length, mask_ratio)
    if noise is None:
        noise = torch.rand(n, length).to(x.device)  # drawn on the CPU: the same anywhere
    elif noise.shape != (n, length):
        raise ValueError(
            f"noise must have shape (N, L) = ({n}, {length}), one value per patch, "
            f"got {tuple(noise.shape)}"
        )

    ids_shuffle = torch.argsort(noise, dim=1)  # (N, L): a random permutation per sample
    ids_restore = torch.argsort(ids_shuffle, dim=1)  # (N, L): its inverse
    ids_keep = ids_shuffle[:, :keep]  # (N, K)
    x_visible = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, dim))

    # 0 for the first K positions of the shuffled order, 1 for the rest, then unshuffle.
    mask = torch.ones(n, length, device=x.device, dtype=x.dtype)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return x_visible, mask, ids_restore


# Other ways to choose the patches (the paper's Fig. 6 and Table 1f compare them with random
# sampling, which works best). Each returns `noise` for `random_masking`: patches with the
# smallest noise stay visible, so the shuffle, the exact count K and `ids_restore` are shared.


def grid_masking_noise(n: int, grid_size: int, generator: torch.Generator | None = None
                       ) -> torch.Tensor:
    """Keep one patch of every 2x2 square (a regular lattice, random phase per sample): with
    `random_masking(x, 0.75, noise)` exactly the lattice stays visible. Returns (N, L).
    Chapter 8 (the ablations appendix trains with it)."""
    rows = torch.arange(grid_size).view(-1, 1).expand(grid_size, grid_size).flatten()
    cols = torch.arange(grid_size).view(1, -1).expand(grid_size, grid_size).flatten()
    phase = torch.randint(0, 2, (n, 2), generator=generator)
    on_lattice = ((rows - phase[:, :1]) % 2 == 0) & ((cols - phase[:, 1:]) % 2 == 0)  # (N, L)
    return (~on_lattice).float() + 0.5 * torch.rand(n, grid_size**2, generator=generator)


def block_masking_noise(n: int, grid_size: int, mask_ratio: float,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Remove large random rectangles until `mask_ratio` of the grid is covered (the
    block-wise masking of BEiT, as the paper's comparison). Returns (N, L) noise; the patches
    removed by `random_masking` are then the rectangles (a few extra or fewer at the margin).
    Chapter 2."""
    target = grid_size**2 - num_visible(grid_size**2, mask_ratio)
    noise = torch.rand(n, grid_size**2, generator=generator) * 0.5
    for i in range(n):
        blocked = torch.zeros(grid_size, grid_size, dtype=torch.bool)
        while int(blocked.sum()) < target:
            area = float(torch.empty(1).uniform_(2, max(2.0, target / 3), generator=generator))
            aspect = float(torch.empty(1).uniform_(-1.2, 1.2, generator=generator).exp())
            h = max(1, min(grid_size, round((area * aspect) ** 0.5)))
            w = max(1, min(grid_size, round((area / aspect) ** 0.5)))
            top = int(torch.randint(0, grid_size - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, grid_size - w + 1, (1,), generator=generator))
            blocked[top:top + h, left:left + w] = True
        noise[i] += blocked.flatten().float()
    return noise
