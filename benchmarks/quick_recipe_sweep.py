"""Which small-scale recipe learns the most in the quick budget? A sweep, printed as a table.

    python benchmarks/quick_recipe_sweep.py                     # every recipe, ~2.5 min each
    python benchmarks/quick_recipe_sweep.py --only baseline lr3e-3 --seconds 60

Each recipe pre-trains on `synthetic` for the same wall-clock budget on this machine (its speed
is measured by a 12-step run, then the step count is set so that the run, start-up included,
fills `--seconds`), then its
frozen features are judged as in `benchmarks/frozen_features.py`: k-NN and a linear probe on
mean-pooled features (5,000 / 2,000 images) against the same encoder at random weights, and the
held-out masked-patch loss as a fraction of predicting zeros.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch

import mae_tutorial as mt
from mae_tutorial import train as tr
from mae_tutorial.data import evaluation_split
from mae_tutorial.evaluate import against_random_init, reconstruction_score
from mae_tutorial.optim import autocast_dtype, cpu_has_native_bf16

MINI = mt.MODEL_PRESETS["vit_mini_patch4"]
# name: (model architecture overrides, training overrides)
RECIPES: dict[str, tuple[dict, dict]] = {
    "baseline": ({}, {}),
    "fp32": ({}, {"amp": "off"}),
    "lr3e-3": ({}, {"base_lr": 3e-3}),
    "lr6e-3": ({}, {"base_lr": 6e-3}),
    "batch64": ({}, {"batch_size": 64}),
    "batch32": ({}, {"batch_size": 32}),
    "mask0.6": ({}, {"mask_ratio": 0.6}),
    "pixel-target": ({}, {"norm_pix_loss": False}),
    "data50k": ({}, {"synthetic_size": 50_000}),
    "b64-data50k": ({}, {"batch_size": 64, "synthetic_size": 50_000}),
    "b64-lr3e-3": ({}, {"batch_size": 64, "base_lr": 3e-3}),
    "b64-dec1": ({"decoder_depth": 1}, {"batch_size": 64}),
    "b64-warmup0.02": ({}, {"batch_size": 64, "warmup_fraction": 0.02}),
    "b64-dec1-lr3e-3": ({"decoder_depth": 1}, {"batch_size": 64, "base_lr": 3e-3}),
    "b64-dec1-lr4e-3": ({"decoder_depth": 1}, {"batch_size": 64, "base_lr": 4e-3}),
    "b64-dec1-lr5e-3": ({"decoder_depth": 1}, {"batch_size": 64, "base_lr": 5e-3}),
    "b64-dec1-lr6e-3": ({"decoder_depth": 1}, {"batch_size": 64, "base_lr": 6e-3}),
    "b64-dec1-lr3e-3-mask0.85": ({"decoder_depth": 1},
                                 {"batch_size": 64, "base_lr": 3e-3, "mask_ratio": 0.85}),
    "b64-dec1-lr4e-3-mask0.85": ({"decoder_depth": 1},
                                 {"batch_size": 64, "base_lr": 4e-3, "mask_ratio": 0.85}),
    "b64-dec1-lr3e-3-mask0.9": ({"decoder_depth": 1},
                                {"batch_size": 64, "base_lr": 3e-3, "mask_ratio": 0.9}),
    "b64-dec1-lr3e-3-w96": ({"decoder_depth": 1, "embed_dim": 96, "num_heads": 3},
                            {"batch_size": 64, "base_lr": 3e-3}),
    "narrow-deep": ({"embed_dim": 96, "depth": 6, "num_heads": 4}, {}),
}


def run(name: str, seconds: float, work: Path) -> dict[str, float]:
    """One recipe; its architecture is a model preset only while it runs (TrainConfig names
    its model by preset)."""
    model_kw, train_kw = RECIPES[name]
    preset = f"sweep_{name}"
    with mock.patch.dict(mt.MODEL_PRESETS, {preset: MINI.replace(**model_kw)}):
        return _run(name, preset, train_kw, seconds, work)


def _run(name: str, preset: str, train_kw: dict, seconds: float, work: Path
         ) -> dict[str, float]:
    base = dict(mt.config.TRAIN_PRESETS["quick"], model=preset, progress=False,
                checkpoint_every=10**9, log_every=10**9, **train_kw)
    probe = tr.TrainConfig(**{**base, "max_steps": 12, "output_dir": str(work / f"{name}_probe")})
    for _ in range(2):  # the first also warms up kernels (bf16 ones are built on use)
        shutil.rmtree(probe.output_dir, ignore_errors=True)
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            tr.train(probe)
        startup = time.perf_counter() - start
    rate = mt.checkpoint.read_metrics(work / f"{name}_probe")[-1]["images_per_s"]  # 12 steps
    per_step = probe.batch_size / rate
    startup -= 12 * per_step  # data generation, model, first-step set-up
    steps = max(10, int((seconds - startup) / per_step))
    cfg = tr.TrainConfig(**{**base, "max_steps": steps, "output_dir": str(work / name)})
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        summary = tr.train(cfg)
    took = time.perf_counter() - start
    mae = mt.mae_from_checkpoint(summary["checkpoint"])
    train_set, test_set = evaluation_split()
    rows = against_random_init(mae, train_set, test_set)
    score = reconstruction_score(mae, test_set)
    return {"steps": steps, "seconds": took, "knn": rows["pre-trained"]["knn"],
            "knn_gain": rows["gain"]["knn"], "probe": rows["pre-trained"]["linear_probe"],
            "probe_gain": rows["gain"]["linear_probe"], "loss_ratio": score["ratio"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--seconds", type=float, default=110.0,
                        help="pre-training wall-clock budget per recipe")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sweep_"))
    amp = autocast_dtype(torch.device("cpu"), "auto")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, amp auto = "
          f"{amp or 'fp32'} (native bf16: {cpu_has_native_bf16()}), "
          f"{args.seconds:.0f} s of pre-training per recipe, dataset synthetic")
    print(f"{'recipe':<26}{'steps':>6}{'s':>6}{'k-NN':>7}{'gain':>7}{'probe':>7}{'gain':>7}"
          f"{'loss/zero':>11}")
    for name in args.only:
        r = run(name, args.seconds, work)
        print(f"{name:<26}{r['steps']:>6}{r['seconds']:>6.0f}{r['knn']:>7.1f}{r['knn_gain']:>+7.1f}"
              f"{r['probe']:>7.1f}{r['probe_gain']:>+7.1f}{r['loss_ratio']:>11.2f}", flush=True)


if __name__ == "__main__":
    main()
