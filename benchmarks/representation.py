"""What MAE learns, against a contrastive model trained in the same budget (the representation
chapter, the paper's Fig. 9 at small scale): for each pre-training seed, the book's MAE (the
`quick` preset), MoCo v3 (`mt.lab.contrastive_once`: the same data, steps, batch and schedule)
and the same ViT at random initialization, judged by

- `frozen`: k-NN and linear probe, cls token and mean of the patch tokens;
- `layers`: a linear probe on each encoder block's mean-pooled output
  (`evaluate.block_features`), also for MAE with a 4-block decoder (Table 1a's mechanism);
- `attention`: the mean attention distance of each block's heads (`evaluate.
  mean_attention_distance`, 512 test images);
- `partial`: fine-tuning of the last 0, 1 or 2 blocks and of all of them, with the converged
  judge's recipe (30 epochs at base lr 1e-2, `finetune_judge.py`).

    python benchmarks/representation.py                       # everything, seeds 0 1 2
    python benchmarks/representation.py --only frozen layers  # the quick parts first
    python benchmarks/representation.py --lr-sweep 1e-3 5e-3 2e-2   # MoCo v3's base lr

`--lr-sweep` pre-trains MoCo v3 with seed 0 at each base lr and records its frozen features, so
the lr the other parts use (`--contrastive-lr`) is chosen by measurement, as the quick preset's
own lr was for MAE. Every finished (part, encoder, seed) is written at once to
mae_tutorial/results/representation.json and skipped on a restart.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from ablations import ROOT, machine, write  # one home for the results files' format

from mae_tutorial.data import evaluation_split, model_inputs
from mae_tutorial.evaluate import (
    block_features,
    frozen_feature_report,
    linear_probe,
    mean_attention_distance,
    random_init,
)
from mae_tutorial.lab import contrastive_once, finetune_once, pretrain_once
from mae_tutorial.lab.ablations import ABLATIONS
from mae_tutorial.lab.cache import CONTRASTIVE_LR  # measured by --lr-sweep
from mae_tutorial.lab.results import representation_key

RESULTS = ROOT / "mae_tutorial" / "results" / "representation.json"
PARTS = ("frozen", "layers", "attention", "partial")
JUDGE = {"epochs": 30, "base_lr": 1e-2}  # finetune_judge.py's converged recipe


def encoders(seed: int, contrastive_lr: float, part: str) -> dict[str, tuple[Any, Path, bool]]:
    """name -> (model, its run folder for cached fine-tunings, pre-trained?) for one seed;
    for `layers`, also MAE with the 4-block decoder of the ablations (its cached model). The
    three main encoders start from the same weights (the seed's initialization)."""
    mae, mae_run = pretrain_once("quick", seed=seed)
    moco, moco_run = contrastive_once("quick", seed=seed, base_lr=contrastive_lr)
    found = {"MAE": (mae, mae_run, True), "MoCo v3": (moco, moco_run, True),
             "random init": (random_init(mae, seed), mae_run, False)}
    if part == "layers":
        deep, deep_run = pretrain_once("quick", seed=seed, **ABLATIONS["dec_depth4"].overrides)
        found["MAE, 4-block decoder"] = (deep, deep_run, True)
    return found


def measure(part: str, model: Any, run: Path, pretrained: bool, seed: int,
            data: tuple) -> dict[str, Any]:
    """One part's numbers for one encoder."""
    train, test = data
    if part == "frozen":
        return {pool: frozen_feature_report(model, train, test, pool) for pool in ("cls", "mean")}
    if part == "layers":
        feats = zip(block_features(model, train), block_features(model, test), strict=True)
        return {"linear_probe": [linear_probe(a, train.labels, b, test.labels)
                                 for a, b in feats]}
    if part == "attention":
        device = next(model.parameters()).device
        imgs = model_inputs(test, 0, 512, model.config.img_size, device)
        return {"distance": mean_attention_distance(model, imgs).tolist()}
    device = next(model.parameters()).device
    tuned = {}
    for blocks in (0, 1, 2, None):
        which = "all" if blocks is None else str(blocks)
        row = finetune_once(run, train, test, model, pretrained=pretrained, seed=seed,
                            device=device, tune_blocks=blocks, curve=True, **JUDGE)
        tuned[which] = {"accuracy": row["accuracy"], "curve": row["curve"]}
    return tuned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--contrastive-lr", type=float, default=CONTRASTIVE_LR)
    parser.add_argument("--lr-sweep", nargs="+", type=float,
                        help="pre-train MoCo v3 (seed 0) at these base lrs, judge its frozen "
                             "features, and stop")
    args = parser.parse_args()
    results = json.loads(args.output.read_text()) if args.output.exists() else {"runs": {}}
    results.setdefault("lr_sweep", {})
    results.update(machine=machine(), torch=torch.__version__,
                   date=datetime.date.today().isoformat())
    os.chdir(ROOT / "book")  # the book's model cache
    print(results["machine"], flush=True)
    data = evaluation_split()
    if args.lr_sweep:
        for lr in args.lr_sweep:
            if f"{lr:g}" in results["lr_sweep"]:
                continue
            start = time.perf_counter()
            moco, run = contrastive_once("quick", seed=0, base_lr=lr)
            row = measure("frozen", moco, run, True, 0, data)
            row["seconds"] = round(time.perf_counter() - start)
            row["last_loss"] = json.loads((run / "metrics.jsonl").read_text()
                                          .splitlines()[-1])["loss"]
            results["lr_sweep"][f"{lr:g}"] = row
            write(results, args.output)
            print(f"MoCo v3 at base lr {lr:g}: {row}", flush=True)
        return
    results["contrastive_lr"] = args.contrastive_lr
    for part in args.only:  # every seed's quick parts before any seed's long one
        for seed in args.seeds:
            for name, (model, run, pretrained) in encoders(seed, args.contrastive_lr,
                                                            part).items():
                key = representation_key(part, name, seed)
                if key in results["runs"]:
                    continue
                start = time.perf_counter()
                row = measure(part, model, run, pretrained, seed, data)
                row["seconds"] = round(time.perf_counter() - start)
                results["runs"][key] = row
                write(results, args.output)
                print(f"{key}: {row}", flush=True)


if __name__ == "__main__":
    main()
