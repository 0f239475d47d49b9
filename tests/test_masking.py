import pytest
import torch

from mae_tutorial import num_visible, random_masking


@pytest.mark.parametrize("length,ratio", [(64, 0.75), (196, 0.75), (49, 0.5), (10, 0.0), (7, 0.8)])
def test_keeps_exactly_int_l_times_one_minus_r(length, ratio):
    x = torch.randn(5, length, 8)
    visible, mask, ids_restore = random_masking(x, ratio)
    keep = int(length * (1 - ratio))
    assert num_visible(length, ratio) == keep
    assert visible.shape == (5, keep, 8)
    assert mask.shape == (5, length) and ids_restore.shape == (5, length)
    assert torch.equal(mask.sum(dim=1), torch.full((5,), float(length - keep)))


def test_visible_tokens_are_the_unmasked_ones():
    n, length = 4, 16
    x = torch.arange(length).float().view(1, length, 1).expand(n, -1, 3).contiguous()
    visible, mask, _ = random_masking(x, 0.75)
    for i in range(n):
        kept_positions = set(visible[i, :, 0].long().tolist())
        assert kept_positions == set(torch.nonzero(mask[i] == 0).flatten().tolist())


def test_ids_restore_undoes_the_shuffle():
    x = torch.randn(3, 20, 4)
    noise = torch.rand(3, 20)
    _, _, ids_restore = random_masking(x, 0.5, noise)
    shuffled = torch.gather(x, 1, torch.argsort(noise, dim=1)[..., None].expand(-1, -1, 4))
    assert torch.equal(torch.gather(shuffled, 1, ids_restore[..., None].expand(-1, -1, 4)), x)


def test_noise_makes_it_deterministic_and_samples_differ():
    x = torch.randn(8, 64, 2)
    noise = torch.rand(8, 64)
    a = random_masking(x, 0.75, noise)
    b = random_masking(x, 0.75, noise.clone())
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    # the smallest noise values are the ones kept
    assert torch.equal(a[1][0] == 0, noise[0] <= noise[0].sort().values[15])
    # per sample: masks of different samples are not all the same
    assert len({tuple(m.tolist()) for m in a[1]}) > 1


def test_bad_inputs():
    x = torch.randn(2, 16, 4)
    for ratio in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            random_masking(x, ratio)
    with pytest.raises(ValueError, match="leaves no visible patch"):
        random_masking(x, 0.95)
    with pytest.raises(ValueError, match=r"noise must have shape \(N, L\) = \(2, 16\)"):
        random_masking(x, 0.75, noise=torch.rand(2, 15))
    with pytest.raises(ValueError, match="shape"):
        random_masking(torch.randn(16, 4), 0.75)


def test_grid_masking_keeps_a_lattice():
    from mae_tutorial.masking import grid_masking_noise

    noise = grid_masking_noise(6, 8, torch.Generator().manual_seed(0))
    _, mask, _ = random_masking(torch.randn(6, 64, 2), 0.75, noise)
    for m in mask.view(6, 8, 8):
        rows, cols = torch.nonzero(m == 0, as_tuple=True)
        assert len(rows) == 16
        assert len(set((rows % 2).tolist())) == 1 and len(set((cols % 2).tolist())) == 1


def test_block_masking_removes_contiguous_regions():
    from mae_tutorial.masking import block_masking_noise

    g = torch.Generator().manual_seed(0)
    block = random_masking(torch.randn(20, 196, 2), 0.5, block_masking_noise(20, 14, 0.5, g))[1]
    rand = random_masking(torch.randn(20, 196, 2), 0.5)[1]
    assert (block.sum(1) == 98).all()

    def removed_neighbours(mask):  # how often a removed patch's right neighbour is removed too
        m = mask.view(-1, 14, 14)
        both = (m[:, :, 1:] * m[:, :, :-1]).sum()
        return (both / m[:, :, :-1].sum()).item()

    assert removed_neighbours(block) > 0.75 > 0.6 > removed_neighbours(rand)
