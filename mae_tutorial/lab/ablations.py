"""The paper's ablations (its Table 1 and Fig. 5) at small scale: the variants, the paper's
numbers beside each, and one function that pre-trains a variant once and measures it.

The ablations appendix (`book/appendix_ablations`). Every variant changes one thing of the
book's quick MAE (`book_model`: `vit_mini_patch4`, mask 75%, a 1-block 64-d decoder, an
encoder without mask tokens, per-patch normalized pixels, random sampling). The full sweep is
`python benchmarks/ablations.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .. import paper
from ..checkpoint import read_metrics
from ..config import config_from_preset, model_config
from ..data import ImageSet, evaluation_split
from ..evaluate import frozen_feature_report
from ..finetune import SHORT_FINETUNE
from ..mae import build_mae
from .cache import book_model, finetune_once


@dataclass(frozen=True)
class Ablation:
    """One row: what changes, and the paper's result for the same setting. The ablations
    appendix."""

    group: str  # which ablation, e.g. "decoder depth"
    setting: str  # this row's value, e.g. "2 blocks"
    overrides: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields changed
    source: str = ""  # where the paper reports it
    paper: str = "-"  # the paper's ViT-L ImageNet result: fine-tuning / linear probe, top-1 %


# The paper's numbers (mae_tutorial.paper): ViT-L/16, 800 epochs on ImageNet-1K (He et al.,
# 2022, Table 1; Sec. 3). Its ablation default is mask 75%, an 8-block 512-d decoder, raw
# pixels, random sampling.
_DEPTH, _WIDTH = paper.TABLE_1["decoder depth"], paper.TABLE_1["decoder width"]
_TOKEN, _TARGET = paper.TABLE_1["mask token"], paper.TABLE_1["reconstruction target"]
_SAMPLING = paper.TABLE_1["mask sampling"]
_ft_lin = paper.ft_lin

ABLATIONS: dict[str, Ablation] = {
    "baseline": Ablation("baseline", "the book's quick MAE", {}, "",
                         f"{_ft_lin(_TARGET['pixel (w/ norm)'])} (norm. pixels, 8 blocks)"),
    "mask0.5": Ablation("mask ratio", "50%", {"mask_ratio": 0.5}, "Fig. 5",
                        "lin. well below 75%'s"),
    "mask0.9": Ablation("mask ratio", "90%", {"mask_ratio": 0.9}, "Fig. 5",
                        "ft. about flat, lin. below 75%'s"),
    "dec_depth2": Ablation("decoder depth", "2 blocks (1 is the baseline)",
                           {"decoder_depth": 2}, "Table 1a",
                           f"{_ft_lin(_DEPTH[2])} (1 block: {_ft_lin(_DEPTH[1])})"),
    "dec_depth4": Ablation("decoder depth", "4 blocks", {"decoder_depth": 4}, "Table 1a",
                           _ft_lin(_DEPTH[4])),
    "dec_width32": Ablation("decoder width", "32-d, 1/4 of the encoder's",
                            {"decoder_embed_dim": 32}, "Table 1b",
                            f"256-d: {_ft_lin(_WIDTH[256])}"),
    "dec_width128": Ablation("decoder width", "128-d, equal to the encoder's (64-d, 1/2, is "
                             "the baseline)", {"decoder_embed_dim": 128}, "Table 1b",
                             f"1024-d: {_ft_lin(_WIDTH[1024])} (512-d: {_ft_lin(_WIDTH[512])})"),
    "encoder_mask_token": Ablation(
        "mask token", "in the encoder (w/ [M])", {"encoder_mask_token": True}, "Table 1c",
        f"{_ft_lin(_TOKEN['encoder w/ [M]'])} at "
        f"{paper.MASK_TOKEN_FLOPS['encoder w/ [M]']}x FLOPs "
        f"(w/o [M]: {_ft_lin(_TOKEN['encoder w/o [M]'])})"),
    "raw_pixels": Ablation("target", "raw pixels", {"norm_pix_loss": False}, "Table 1d",
                           f"{_ft_lin(_TARGET['pixel (w/o norm)'])} "
                           f"(norm. pixels: {_ft_lin(_TARGET['pixel (w/ norm)'])})"),
    "loss_on_all": Ablation("target", "loss on all patches", {"loss_on_all": True},
                            "Sec. 3, footnote", f"about {paper.LOSS_ON_ALL_PIXELS_DROP} lower"),
    "block": Ablation("mask sampling", "block, 75%", {"masking": "block"}, "Table 1f",
                      f"{_ft_lin(_SAMPLING['block', 75])} "
                      f"(random: {_ft_lin(_SAMPLING['random', 75])})"),
    "grid": Ablation("mask sampling", "grid, 75%", {"masking": "grid"}, "Table 1f",
                     _ft_lin(_SAMPLING["grid", 75])),
}


def pretraining_flops(overrides: dict[str, Any], batch: int = 8) -> float:
    """Floating-point operations of one pre-training forward + backward, per image, for the
    quick MAE with `overrides` (the paper's "FLOPs" column of Table 1c). The ablations
    appendix."""
    cfg = config_from_preset("quick", **overrides)
    model = build_mae(model_config(cfg))
    size = model.config.img_size
    imgs = torch.randn(batch, 3, size, size)
    with FlopCounterMode(display=False) as counter:
        model(imgs, cfg.mask_ratio, loss_on_all=cfg.loss_on_all)[0].backward()
    return counter.get_total_flops() / batch


def run_ablation(name: str, data: tuple[ImageSet, ImageSet] | None = None,
                 finetune: bool = True, seed: int = 0) -> dict[str, Any]:
    """Pre-train the variant `name` once with the run seed `seed` (`book_model`, cached; seed
    0 is the book's) and measure it: k-NN and linear probe on frozen mean-pooled features,
    fine-tuning (cached, `finetune_once`), pre-training FLOPs per image and the seconds of its
    steps (from its metrics). Chapter 7 and the ablations appendix."""
    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; choose one of {list(ABLATIONS)}")
    overrides = ABLATIONS[name].overrides
    model, run = book_model(**overrides, seed=seed)
    train, test = data or evaluation_split()
    report = frozen_feature_report(model, train, test, pool="mean")
    row: dict[str, Any] = {"knn": report["knn"], "linear_probe": report["linear_probe"],
                           "flops_per_image": pretraining_flops(overrides)}
    if finetune:
        tuned = finetune_once(run, train, test, model, seed=seed, device=next(
            model.parameters()).device, **SHORT_FINETUNE)
        row["finetune"] = tuned["accuracy"]
    rates = [m["images_per_s"] for m in read_metrics(run) if "images_per_s" in m]
    row["images_per_s"] = sorted(rates)[len(rates) // 2] if rates else float("nan")
    return row
