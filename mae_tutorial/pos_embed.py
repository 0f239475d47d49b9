"""Fixed 2D sine-cosine position embeddings (MAE uses them in encoder and decoder).

A token at row y, column x of the patch grid gets D values: the first D/2 encode x, the last
D/2 encode y, each as [sin(pos * w_k), cos(pos * w_k)] over D/4 frequencies
w_k = 10000^(-k / (D/4)). This is the order of the official release, so its stored tables and
ours agree value for value. `interpolate_pos_embed` resizes a table to another grid, for
fine-tuning at another resolution.
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


def _grid(size: int | tuple[int, int], what: str) -> tuple[int, int]:
    rows, cols = (size, size) if isinstance(size, int) else size
    if rows < 1 or cols < 1:
        raise ValueError(f"{what} must be at least 1x1, got {rows}x{cols}")
    return rows, cols


def interpolate_pos_embed(
    table: torch.Tensor,
    new_grid: int | tuple[int, int],
    num_extra_tokens: int = 1,
    old_grid: int | tuple[int, int] | None = None,
) -> torch.Tensor:
    """A position table resized to another patch grid, for fine-tuning at another
    resolution. The after-MAE page.

    `table` is (E + rows*cols, D), or (1, E + rows*cols, D) as a model stores it, with E
    extra tokens (the cls token) first and the patch rows in raster order; `old_grid` is
    (rows, cols), read as a square when not given. The E extra rows are kept as they are;
    the grid rows, seen as a D-channel image of rows x cols pixels, are resized bicubically
    (`align_corners=False`), so new token (i, j) takes the value at the old grid's
    fractional position ((i + 0.5) * rows / new_rows - 0.5, likewise for j): the same table,
    stretched over the old image's extent, not a table built at the new size.
    """
    if table.dim() not in (2, 3) or (table.dim() == 3 and table.shape[0] != 1):
        raise ValueError(f"expected a table (N, D) or (1, N, D), got {tuple(table.shape)}")
    tokens, dim = table.shape[-2:]
    if not 0 <= num_extra_tokens <= tokens:
        raise ValueError(f"num_extra_tokens={num_extra_tokens} for a table of {tokens} rows")
    patches = tokens - num_extra_tokens
    if old_grid is None:
        side = round(patches**0.5)
        if side * side != patches:
            raise ValueError(f"{patches} patch rows are not a square grid; pass old_grid")
        old_grid = side
    rows, cols = _grid(old_grid, "old_grid")
    if rows * cols != patches:
        raise ValueError(f"old_grid {rows}x{cols} does not hold the table's {patches} patch "
                         f"rows ({tokens} rows, {num_extra_tokens} extra)")
    new_rows, new_cols = _grid(new_grid, "new_grid")
    flat = table.reshape(tokens, dim)
    extra, grid = flat[:num_extra_tokens], flat[num_extra_tokens:]
    if (new_rows, new_cols) != (rows, cols):
        image = grid.reshape(1, rows, cols, dim).permute(0, 3, 1, 2)  # (1, D, rows, cols)
        image = torch.nn.functional.interpolate(
            image.double(), size=(new_rows, new_cols), mode="bicubic", align_corners=False)
        grid = image.permute(0, 2, 3, 1).reshape(new_rows * new_cols, dim).to(table.dtype)
    out = torch.cat([extra, grid], dim=0)
    return out.unsqueeze(0) if table.dim() == 3 else out
