"""Figure helpers the chapters share: image grids, masked images, training curves, and a
slider over precomputed frames that plays on the book's pages without a kernel."""

from __future__ import annotations

import io
import statistics
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import torch

from .patches import patchify, unpatchify


def to_numpy_image(img: torch.Tensor):
    """(C, H, W) or (1, C, H, W) tensor in [0, 1] -> (H, W, C) NumPy array, clipped.
    Chapter 2."""
    if img.ndim == 4:
        img = img[0]
    return img.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()


def mask_images(imgs: torch.Tensor, mask: torch.Tensor, patch_size: int,
                fill: float = 0.5) -> torch.Tensor:
    """Paint the removed patches (mask == 1) with a flat grey: what the encoder does not see.
    Chapters 1 and 2."""
    patches = patchify(imgs, patch_size)  # (N, L, p*p*C)
    keep = (1 - mask).unsqueeze(-1).to(patches.dtype)  # (N, L, 1)
    patches = patches * keep + fill * (1 - keep)
    grid = (imgs.shape[-2] // patch_size, imgs.shape[-1] // patch_size)
    return unpatchify(patches, patch_size, imgs.shape[1], grid)


def show_images(imgs: Sequence[torch.Tensor] | torch.Tensor, titles: Sequence[str] | None = None,
                ncols: int | None = None, size: float = 2.5, suptitle: str | None = None):
    """Show images in [0, 1] side by side, one panel each; returns the figure. Chapters 1 and 2."""
    imgs = list(imgs)
    ncols = ncols or len(imgs)
    nrows = -(-len(imgs) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(imgs):
            ax.imshow(to_numpy_image(imgs[i]))
            if titles is not None:
                ax.set_title(titles[i], fontsize=10)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def show_rows(rows: Mapping[str, torch.Tensor], mean, std, size: float = 1.3):
    """One row of images per entry of `rows` (name -> (N, C, H, W) in the dataset's normalized
    space, e.g. the panels of `evaluate.reconstruct`), un-normalized with `mean` and `std`,
    the row's name over its first image; returns the figure. Chapters 5-7."""
    from .data import denormalize

    pixels = [denormalize(r.detach().float().cpu(), mean, std).clamp(0, 1)
              for r in rows.values()]
    n = len(pixels[0])
    titles = [name if i == 0 else "" for name in rows for i in range(n)]
    return show_images([row[i] for row in pixels for i in range(n)], titles, ncols=n,
                       size=size)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A markdown table (what `IPython.display.Markdown` renders on the pages) from a header
    and rows of cells, each cell written with `str`. Chapter 7, the ablations appendix and the
    after-MAE page."""
    if any(len(row) != len(header) for row in rows):
        raise ValueError(f"every row needs {len(header)} cells, like the header {list(header)}")
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(map(str, line)) + " |" for line in lines)


def draw_patch_grid(ax, img_size: int, patch_size: int, color: str = "white") -> None:
    """Draw the patch boundaries over an image already shown on `ax`. Chapter 2."""
    for k in range(0, img_size + 1, patch_size):
        ax.axhline(k - 0.5, color=color, linewidth=0.6)
        ax.axvline(k - 0.5, color=color, linewidth=0.6)


def plot_metrics(records: Sequence[dict], ax=None, title: str = "pre-training"):
    """Loss (log scale) and learning rate against the step, from `checkpoint.read_metrics`.
    Chapter 6."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    records = [r for r in records if "loss" in r]  # not the lines that record a resume
    steps = [r["step"] for r in records]
    ax.plot(steps, [r["loss"] for r in records], label="loss (masked patches)")
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    lr_ax = ax.twinx()
    lr_ax.plot(steps, [r["lr"] for r in records], color="tab:orange", alpha=0.6, label="lr")
    lr_ax.set_ylabel("learning rate")
    lines = ax.get_lines() + lr_ax.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="upper right")
    ax.figure.tight_layout()
    return ax


def plot_seed_curves(curves: Mapping[str, Sequence[Sequence[float]]], ax=None,
                     xlabel: str = "epoch", ylabel: str = "test accuracy (%)"):
    """One line per name: the mean over seeds of curves measured at x = 1, 2, ..., with a
    band from the lowest to the highest seed. Chapter 7."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for name, runs in curves.items():
        values = torch.tensor([list(run) for run in runs], dtype=torch.float64)  # (seeds, x)
        x = range(1, values.shape[1] + 1)
        seeds = f"{len(runs)} seed" + "s" * (len(runs) > 1)
        line, = ax.plot(x, values.mean(0), label=f"{name} ({seeds})")
        ax.fill_between(x, values.min(0).values, values.max(0).values, alpha=0.2,
                        color=line.get_color())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.figure.tight_layout()
    return ax


def mean_range(values: Sequence[float]) -> str:
    """Results of several seeds as one table cell, "mean (lowest-highest)"; one value, or
    seeds that all agree, print once. Chapter 7."""
    if not values:
        raise ValueError("no results to summarize: pass one value per seed")
    if min(values) == max(values):
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def plot_seed_dots(rows: Mapping[str, Sequence[float]], ax=None, title: str = "",
                   xlabel: str = "test accuracy (%)", labels: bool = True):
    """One row per name, top to bottom: a dot per seed and a bar at their mean, so a reader
    sees whether two rows' seeds overlap. `labels=False` leaves the row names to a plot
    beside it that shares them. Chapter 7."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 0.35 * len(rows) + 1.2))
    for i, values in enumerate(rows.values()):
        ax.plot(values, [i] * len(values), "o", color="tab:blue", alpha=0.6)
        mean = sum(values) / len(values)
        ax.plot([mean, mean], [i - 0.3, i + 0.3], color="k")
    ax.set_yticks(range(len(rows)), list(rows) if labels else [""] * len(rows))
    ax.set_ylim(len(rows) - 0.5, -0.5)  # the first row on top
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    return ax


def image_bytes(img: torch.Tensor, fmt: str = "png", scale: int = 1) -> bytes:
    """Encode a (C, H, W) image in [0, 1] as PNG or JPEG bytes, each pixel repeated `scale`
    times in both directions (small images stay sharp when enlarged). Chapter 2."""
    from PIL import Image

    array = (to_numpy_image(img) * 255).round().astype("uint8")
    picture = Image.fromarray(array)
    if scale != 1:
        picture = picture.resize((picture.width * scale, picture.height * scale),
                                 Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG" if fmt == "jpeg" else "PNG", quality=90)
    return buffer.getvalue()


def frame_slider(frames: Mapping[str, torch.Tensor], captions: Sequence[str] | None = None,
                 description: str = "", value: str | None = None, fmt: str = "png",
                 scale: int = 1, in_browser: bool | None = None):
    """A slider that flips through precomputed images, one per slider value.

    Every frame is encoded once. With ipywidgets 8 (`in_browser`, the default there) all
    frames are stored in the widget and the slider's position is linked to the frame shown in
    the browser (`jslink` to a `Stack`), so the slider also works where no Python runs: in a
    saved notebook and on the book's HTML pages. ipywidgets 7, which Colab ships, has no
    `Stack`: there the running kernel swaps the frame when the slider moves, which works in a
    live notebook only. `frames` maps the slider's labels to (C, H, W) images in [0, 1];
    `captions` are shown under the frames. Chapter 2.
    """
    try:
        import ipywidgets as widgets
    except ImportError as err:  # the book's extra installs it
        raise ImportError("frame_slider needs ipywidgets: pip install ipywidgets") from err
    labels = list(frames)
    if not labels:
        raise ValueError("frame_slider needs at least one frame")
    if captions is not None and len(captions) != len(labels):
        raise ValueError(f"{len(captions)} captions for {len(labels)} frames")
    value = labels[0] if value is None else value
    if value not in frames:
        raise ValueError(f"value {value!r} is not one of the frames' labels {labels}")
    has_stack = hasattr(widgets, "Stack")  # ipywidgets >= 8
    in_browser = has_stack if in_browser is None else in_browser
    if in_browser and not has_stack:
        raise ValueError(f"in_browser=True needs ipywidgets >= 8 (this is "
                         f"{widgets.__version__}); pass in_browser=False")
    encoded = [image_bytes(img, fmt, scale) for img in frames.values()]
    height, width = (str(scale * n) for n in next(iter(frames.values())).shape[-2:])
    slider = widgets.SelectionSlider(options=labels, value=value, description=description,
                                     continuous_update=True,
                                     layout=widgets.Layout(width="min(100%, 32rem)"),
                                     style={"description_width": "initial"})

    def view(k: int):  # one frame with its caption
        picture = widgets.Image(value=encoded[k], format=fmt, width=width, height=height)
        if not captions:
            return picture
        return widgets.VBox([picture, widgets.Label(captions[k])],
                            layout=widgets.Layout(align_items="flex-start"))

    if in_browser:
        shown = widgets.Stack([view(k) for k in range(len(labels))],
                              selected_index=labels.index(value))
        widgets.jslink((slider, "index"), (shown, "selected_index"))
        return widgets.VBox([slider, shown])
    shown = view(labels.index(value))
    picture, caption = (shown.children if captions else (shown, None))

    def flip(change: dict) -> None:  # in the kernel: ipywidgets 7 has no Stack to link to
        picture.value = encoded[change["new"]]
        if caption is not None:
            caption.value = captions[change["new"]]

    slider.observe(flip, names="index")
    return widgets.VBox([slider, shown])
