import pytest
import torch

from mae_tutorial import patchify, unpatchify


def test_shapes_and_round_trip():
    imgs = torch.randn(2, 3, 32, 48)
    x = patchify(imgs, 8)
    assert x.shape == (2, (32 // 8) * (48 // 8), 8 * 8 * 3)
    assert torch.equal(unpatchify(x, 8, 3, grid_size=(4, 6)), imgs)


def test_square_round_trip_default_grid():
    imgs = torch.randn(3, 1, 16, 16)
    assert torch.equal(unpatchify(patchify(imgs, 4), 4, channels=1), imgs)


def test_layout_is_raster_order_with_channel_last():
    # pixel value encodes (channel, row, col) so we can read back where each one went
    c, h, w, p = 3, 8, 8, 4
    ch, row, col = torch.meshgrid(torch.arange(c), torch.arange(h), torch.arange(w), indexing="ij")
    imgs = (ch * 10000 + row * 100 + col).float()[None]
    x = patchify(imgs, p)
    # patch 1 is the top row's second patch: rows 0..3, columns 4..7
    # inside it, index (pr * p + pc) * C + c holds pixel (pr, 4 + pc) of channel c
    for pr, pc, cc in [(0, 0, 0), (1, 2, 1), (3, 3, 2)]:
        assert x[0, 1, (pr * p + pc) * c + cc] == cc * 10000 + pr * 100 + (4 + pc)
    # patch 2 starts the second row of patches
    assert x[0, 2, 0] == 4 * 100 + 0


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="not divisible by the patch size"):
        patchify(torch.zeros(1, 3, 30, 32), 4)
    with pytest.raises(ValueError, match="rank 3"):
        patchify(torch.zeros(3, 32, 32), 4)
    with pytest.raises(ValueError, match="need 48"):
        unpatchify(torch.zeros(1, 64, 16), 4, channels=3)
    with pytest.raises(ValueError, match="square grid"):
        unpatchify(torch.zeros(1, 24, 48), 4)


def test_mask_to_pixels_spreads_each_patch():
    from mae_tutorial.patches import mask_to_pixels

    mask = torch.tensor([[0.0, 1.0, 1.0, 0.0, 0.0, 1.0]])  # a 2x3 grid of 4x4 patches
    pixels = mask_to_pixels(mask, 4, grid_size=(2, 3))
    assert pixels.shape == (1, 1, 8, 12)
    assert pixels[0, 0, :4, 4:8].eq(1).all() and pixels[0, 0, :4, :4].eq(0).all()
    assert pixels[0, 0, 4:, 8:].eq(1).all() and pixels.sum() == 3 * 16
