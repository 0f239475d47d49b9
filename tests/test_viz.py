import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from mae_tutorial import patchify, random_masking, viz  # noqa: E402


def test_mask_images_greys_out_exactly_the_removed_patches():
    imgs = torch.rand(2, 3, 32, 32)
    _, mask, _ = random_masking(patchify(imgs, 8), 0.75)
    shown = patchify(viz.mask_images(imgs, mask, 8, fill=0.5), 8)
    original = patchify(imgs, 8)
    removed = mask.bool()
    assert torch.equal(shown[~removed], original[~removed])
    assert (shown[removed] == 0.5).all()


def test_show_images_and_metrics_plot():
    fig = viz.show_images([torch.rand(3, 8, 8), torch.rand(1, 3, 8, 8)], ["a", "b"])
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
    records = [{"step": s, "loss": 1 / s, "lr": 0.1} for s in range(1, 6)]
    ax = viz.plot_metrics(records)
    assert list(ax.get_lines()[0].get_ydata()) == [1 / s for s in range(1, 6)]
    assert ax.get_yscale() == "log"
