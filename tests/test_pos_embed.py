import math

import pytest
import torch

from mae_tutorial import interpolate_pos_embed, sincos_2d
from mae_tutorial.pos_embed import sincos_1d


def test_shape_and_cls_row():
    table = sincos_2d(64, 8, cls_token=True)
    assert table.shape == (65, 64) and table.dtype == torch.float32
    assert torch.equal(table[0], torch.zeros(64))


def test_halves_encode_column_then_row():
    dim, rows, cols = 16, 3, 5
    table = sincos_2d(dim, (rows, cols))
    # token at (row 2, col 4) is the 2 * cols + 4 = 14th in raster order
    token = table[2 * cols + 4]
    assert torch.allclose(token[: dim // 2], sincos_1d(dim // 2, torch.tensor([4]))[0].float())
    assert torch.allclose(token[dim // 2:], sincos_1d(dim // 2, torch.tensor([2]))[0].float())
    # first frequency is 1: sin(col) then cos(col) in the first quarter
    assert math.isclose(token[0].item(), math.sin(4), rel_tol=1e-6)
    assert math.isclose(token[dim // 4].item(), math.cos(4), rel_tol=1e-6)


def test_nearby_positions_are_more_similar():
    table = sincos_2d(128, 8)
    sim = table @ table[27]  # token at row 3, col 3
    assert sim.argmax() == 27
    assert sim[28] > sim[31] and sim[35] > sim[59]  # neighbours beat far tokens


def test_matches_hugging_face_table():
    vit_mae = pytest.importorskip("transformers.models.vit_mae.modeling_vit_mae")
    theirs = vit_mae.build_2d_sinusoidal_position_embedding(8, 8, 64, cls_token=True)
    # HF builds [row | column] and swaps the halves to match the released checkpoints
    theirs = torch.cat([theirs[:, 32:], theirs[:, :32]], dim=1)
    assert torch.equal(sincos_2d(64, 8, cls_token=True), theirs)


def test_bad_dims():
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_2d(30, 4)


# interpolate_pos_embed: a table resized to another patch grid (fine-tuning at another size)

def stretched_sincos(dim: int, old: int, new: int) -> torch.Tensor:
    """The sin-cos table of a new x new grid laid over the old grid's extent: token i sits at
    the old grid's position (i + 0.5) * old / new - 0.5, as `align_corners=False` maps it."""
    pos = (torch.arange(new, dtype=torch.float64) + 0.5) * old / new - 0.5
    y, x = torch.meshgrid(pos, pos, indexing="ij")
    return torch.cat([sincos_1d(dim // 2, x.flatten()), sincos_1d(dim // 2, y.flatten())],
                     dim=1).float()


def test_interpolation_is_the_identity_at_the_same_size():
    table = torch.randn(1, 1 + 49, 32)
    same = interpolate_pos_embed(table, 7)
    assert torch.equal(same, table) and same is not table


def test_interpolation_shapes_and_extra_tokens():
    table = torch.randn(1, 1 + 64, 32)
    bigger = interpolate_pos_embed(table, 12)
    assert bigger.shape == (1, 1 + 144, 32)
    assert torch.equal(bigger[:, 0], table[:, 0])  # the cls row is kept as it is
    assert interpolate_pos_embed(table[0], (4, 6)).shape == (1 + 24, 32)  # 2D in, 2D out
    two_extra = torch.randn(2 + 6 * 4, 16)
    out = interpolate_pos_embed(two_extra, (3, 5), num_extra_tokens=2, old_grid=(6, 4))
    assert out.shape == (2 + 15, 16) and torch.equal(out[:2], two_extra[:2])
    assert interpolate_pos_embed(torch.randn(64, 8), 4, num_extra_tokens=0).shape == (16, 8)


def test_a_constant_grid_stays_constant():
    table = torch.cat([torch.zeros(1, 8), torch.full((25, 8), 0.3)])
    assert torch.allclose(interpolate_pos_embed(table, 9)[1:], torch.full((81, 8), 0.3))


def test_interpolated_sincos_is_the_sincos_of_the_stretched_grid():
    dim, old, new = 64, 8, 16
    table = sincos_2d(dim, old, cls_token=True)
    resized = interpolate_pos_embed(table, new)
    expected = stretched_sincos(dim, old, new)
    similarity = torch.nn.functional.cosine_similarity(resized[1:], expected, dim=1)
    assert similarity.min() > 0.99 and (resized[1:] - expected).abs().max() < 0.2
    assert torch.equal(resized[0], torch.zeros(dim))
    # ... and not the table built with integer positions 0..new-1, which covers a wider image
    assert (resized - sincos_2d(dim, new, cls_token=True)).abs().max() > 1


def test_interpolation_keeps_the_dtype_and_the_gradient():
    table = sincos_2d(16, 4, cls_token=True).unsqueeze(0).requires_grad_()
    out = interpolate_pos_embed(table, 6)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert table.grad is not None and table.grad[0, 1:].abs().sum() > 0


def test_interpolation_refuses_bad_input():
    with pytest.raises(ValueError, match="not a square grid"):
        interpolate_pos_embed(torch.randn(1 + 24, 8), 4)
    with pytest.raises(ValueError, match="does not hold"):
        interpolate_pos_embed(torch.randn(1 + 24, 8), 4, old_grid=(5, 6))
    with pytest.raises(ValueError, match=r"\(N, D\) or \(1, N, D\)"):
        interpolate_pos_embed(torch.randn(2, 17, 8), 4)
    with pytest.raises(ValueError, match="num_extra_tokens"):
        interpolate_pos_embed(torch.randn(4, 8), 2, num_extra_tokens=5)
    with pytest.raises(ValueError, match="new_grid must be at least 1x1"):
        interpolate_pos_embed(torch.randn(1 + 16, 8), 0)
