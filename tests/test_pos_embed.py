import math

import pytest
import torch

from mae_tutorial import sincos_2d
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
