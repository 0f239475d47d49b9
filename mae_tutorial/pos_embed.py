"""Fixed 2D sine-cosine position embeddings (MAE uses them in encoder and decoder).

A token at row y, column x of the patch grid gets D values: the first D/2 encode x, the last
D/2 encode y, each as [sin(pos * w_k), cos(pos * w_k)] over D/4 frequencies
w_k = 10000^(-k / (D/4)). This is the order of the official release, so its stored tables and
ours agree value for value.
"""

from __future__ import annotations

import torch


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """(M,) positions -> (M, dim) embedding: dim/2 sines then dim/2 cosines. Chapter 3."""
    if dim % 2:
        raise ValueError(f"the 1D sin-cos embedding needs an even dimension, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega  # (dim/2,) frequencies, from 1 down to 1/10000
    angles = positions.to(torch.float64).reshape(-1, 1) * omega  # (M, dim/2)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def sincos_2d(
    dim: int, grid_size: int | tuple[int, int], cls_token: bool = False
) -> torch.Tensor:
    """Position table for a patch grid, float32 of shape (rows*cols [+1], dim).

    Rows are in raster order (the order of `patchify`); with `cls_token`, a first row of zeros
    is added for the class token, which has no position. Chapter 3.
    """
    if dim % 4:
        raise ValueError(f"the 2D sin-cos embedding needs a dimension divisible by 4, got {dim}")
    rows, cols = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    y, x = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    table = torch.cat([sincos_1d(dim // 2, x.flatten()), sincos_1d(dim // 2, y.flatten())], dim=1)
    if cls_token:
        table = torch.cat([torch.zeros(1, dim, dtype=table.dtype), table], dim=0)
    return table.float()
