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


def test_show_rows_draws_one_row_per_entry_in_pixel_space():
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    pixels = torch.rand(3, 3, 8, 8)
    normalized = (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    fig = viz.show_rows({"original": normalized, "twice": normalized}, mean, std)
    assert [ax.get_title() for ax in fig.axes] == ["original", "", "", "twice", "", ""]
    shown = fig.axes[4].get_images()[0].get_array()  # second row, second image
    assert torch.allclose(torch.tensor(shown).permute(2, 0, 1).float(), pixels[1], atol=1e-5)


def test_image_bytes_encodes_the_pixels():
    import io

    from PIL import Image

    img = torch.zeros(3, 4, 6)
    img[0, :, :3] = 1.0  # left half red
    decoded = Image.open(io.BytesIO(viz.image_bytes(img, "png", scale=3)))
    assert decoded.size == (18, 12) and decoded.format == "PNG"
    assert decoded.getpixel((0, 0)) == (255, 0, 0) and decoded.getpixel((17, 11)) == (0, 0, 0)
    assert Image.open(io.BytesIO(viz.image_bytes(img, "jpeg"))).format == "JPEG"


def test_frame_slider_links_the_slider_to_its_frames_in_the_browser():
    from ipywidgets.embed import embed_data

    frames = {f"{r:.0%}": torch.full((3, 8, 8), r) for r in (0.25, 0.5, 0.75)}
    box = viz.frame_slider(frames, captions=["a", "b", "c"], description="ratio", value="50%")
    slider, stack = box.children
    assert list(slider.options) == ["25%", "50%", "75%"] and slider.index == 1
    assert len(stack.children) == 3 and stack.selected_index == 1
    assert [view.children[1].value for view in stack.children] == ["a", "b", "c"]
    pictures = [view.children[0].value for view in stack.children]
    assert len(set(pictures)) == 3  # three different frames
    # The link lives in the browser: the saved widget state holds a Link from the slider's
    # index to the frame the stack shows, which is what the book's pages replay.
    state = embed_data(views=[box])["manager_state"]["state"]
    links = [m["state"] for m in state.values() if m["model_name"] == "LinkModel"]
    assert {"source": [f"IPY_MODEL_{slider.model_id}", "index"],
            "target": [f"IPY_MODEL_{stack.model_id}", "selected_index"]}.items() \
        <= links[0].items()
    assert len(links) == 1


def test_frame_slider_rejects_bad_input():
    import pytest

    frames = {"a": torch.zeros(3, 4, 4)}
    with pytest.raises(ValueError, match="not one of"):
        viz.frame_slider(frames, value="b")
    with pytest.raises(ValueError, match="2 captions for 1 frames"):
        viz.frame_slider(frames, captions=["x", "y"])
    with pytest.raises(ValueError, match="at least one frame"):
        viz.frame_slider({})


def test_frame_slider_frames_keep_their_size():
    frames = {"a": torch.zeros(3, 8, 6), "b": torch.ones(3, 8, 6)}
    _, stack = viz.frame_slider(frames, captions=["short", "a much longer caption"],
                                scale=4).children
    pictures = [view.children[0] for view in stack.children]
    assert {(p.width, p.height) for p in pictures} == {("24", "32")}


def test_frame_slider_without_a_stack_flips_frames_in_the_kernel(monkeypatch):
    """ipywidgets 7 (Colab's) has no Stack: the kernel swaps the frame instead."""
    import ipywidgets
    import pytest

    frames = {f"{r:.0%}": torch.full((3, 8, 8), r) for r in (0.25, 0.5, 0.75)}
    box = viz.frame_slider(frames, captions=["a", "b", "c"], value="25%", in_browser=False)
    slider, view = box.children
    picture, caption = view.children
    assert caption.value == "a"
    first = picture.value
    slider.value = "75%"
    assert caption.value == "c" and picture.value != first
    assert picture.value == viz.image_bytes(frames["75%"], "png")
    # what a runtime without Stack gets by default, and what it cannot ask for
    monkeypatch.delattr(ipywidgets, "Stack")
    slider, view = viz.frame_slider(frames, value="50%").children
    assert isinstance(view, ipywidgets.Image) and slider.index == 1
    with pytest.raises(ValueError, match="needs ipywidgets >= 8"):
        viz.frame_slider(frames, in_browser=True)


def test_markdown_table_writes_header_rule_and_rows_and_refuses_ragged_rows():
    import pytest

    from mae_tutorial.viz import markdown_table

    text = markdown_table(["method", "acc"], [["MAE", 85.9], ["scratch", "82.6"]])
    assert text.splitlines() == ["| method | acc |", "| --- | --- |", "| MAE | 85.9 |",
                                 "| scratch | 82.6 |"]
    with pytest.raises(ValueError, match="every row needs 2 cells"):
        markdown_table(["method", "acc"], [["MAE"]])


def test_plot_seed_curves_draws_the_mean_and_the_seeds_range():
    ax = viz.plot_seed_curves({"MAE": [[10, 20, 30], [20, 40, 50]], "scratch": [[5, 6, 7]]})
    mean = ax.get_lines()[0].get_ydata()
    assert list(mean) == [15, 30, 40] and list(ax.get_lines()[0].get_xdata()) == [1, 2, 3]
    band = ax.collections[0].get_paths()[0].vertices[:, 1]  # lows and highs of the seeds
    assert band.min() == 10 and band.max() == 50
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["MAE (2 seeds)",
                                                                  "scratch (1 seed)"]


def test_mean_range_prints_the_mean_and_the_seeds_range_or_the_one_value():
    import pytest

    assert viz.mean_range([93.45, 95.3, 94.3]) == "94.3 (93.5-95.3)"
    assert viz.mean_range([36.6, 36.6, 36.6]) == "36.6"  # seeds that do not move it
    assert viz.mean_range([42.0]) == "42.0"
    with pytest.raises(ValueError, match="one value per seed"):
        viz.mean_range([])


def test_plot_seed_dots_draws_each_seed_and_a_bar_at_the_mean_first_row_on_top():
    ax = viz.plot_seed_dots({"baseline": [90, 92, 94], "mask0.9": [88, 89]}, title="t")
    dots, bar, dots2, bar2 = ax.get_lines()
    assert list(dots.get_xdata()) == [90, 92, 94] and set(dots.get_ydata()) == {0}
    assert list(bar.get_xdata()) == [92, 92] and set(dots2.get_ydata()) == {1}
    assert list(bar2.get_xdata()) == [88.5, 88.5]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["baseline", "mask0.9"]
    low, high = ax.get_ylim()
    assert low > high  # row 0 at the top
    ax = viz.plot_seed_dots({"a": [1.0], "b": [2.0]}, labels=False)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["", ""]
