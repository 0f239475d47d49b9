"""Which generated dataset should the chapters use? One where raw pixels fail and MAE's
pre-training clearly beats both the pixels and its own random initialization.

For each candidate (`synthetic`: shapes on flat backgrounds, the book's set so far;
`patterns`: ten textures; `shapes_on_patterns`: the shapes on a muted texture) and each
pre-training seed, it pre-trains the `quick` preset (the chapters' budget, 936 steps, on
10,000 images generated with data seed 0 for every run seed) and judges its frozen
mean-pooled features beside the three baselines of `mt.evaluate.frozen_feature_table` (raw
pixels, the same ViT at random weights, a random two-stage CNN): k-NN and a linear probe on
5,000 / 2,000 labelled images the pre-training never saw (`evaluation_split`). Then it
fine-tunes the MAE and the same ViT from scratch with one recipe (9 epochs at base lr 1e-2,
the after-MAE page's longer schedule).

    python benchmarks/dataset_choice.py            # the frozen measures, then the fine-tunings
    python benchmarks/dataset_choice.py --print    # the table of what is done so far

Every finished (dataset, seed, measure) is written at once to
mae_tutorial/results/dataset_choice.json and skipped on a restart, so the sweep (about 20
minutes per dataset and seed on 2 CPU cores, most of it fine-tuning) can span sittings.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path

import torch
from ablations import ROOT, machine, write  # one home for the results files' format

from mae_tutorial.data import evaluation_split
from mae_tutorial.evaluate import frozen_feature_table
from mae_tutorial.lab import finetune_once, pretrain_once
from mae_tutorial.lab.results import choice_key, split_choice_key
from mae_tutorial.viz import mean_range

RESULTS = ROOT / "mae_tutorial" / "results" / "dataset_choice.json"
DATASETS = ("synthetic", "patterns", "shapes_on_patterns", "scattered_shapes")
SEEDS = (0, 1, 2)
FINETUNE = {"epochs": 9, "base_lr": 1e-2}
ENCODERS = ("MAE", "raw pixels", "random-init ViT", "random CNN")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--print", action="store_true", help="print the table and stop")
    parser.add_argument("--skip-finetune", action="store_true")
    parser.add_argument("--datasets", nargs="+", default=DATASETS, choices=DATASETS)
    parser.add_argument("--seeds", nargs="+", type=int, default=SEEDS)
    parser.add_argument("--epochs", type=int, default=6,
                        help="pre-training epochs (the quick preset's 6 is the chapters' budget)")
    args = parser.parse_args()
    results = json.loads(args.output.read_text()) if args.output.exists() else {"runs": {}}
    if args.print:
        print_table(results)
        return
    results.update(machine=machine(), torch=torch.__version__,
                   date=datetime.date.today().isoformat(), finetune=FINETUNE,
                   evaluation="mean-pooled features; k-NN k=20 cosine T=0.07; linear probe 50 "
                              "epochs; 5,000 train (data seed 1) / 2,000 test images")
    os.chdir(ROOT / "book")  # the book's model cache
    print(results["machine"], flush=True)
    plan = [(d, s, "frozen") for s in args.seeds for d in args.datasets]
    if not args.skip_finetune:
        plan += [(d, s, "finetune") for s in args.seeds for d in args.datasets]
    for dataset, seed, measure in plan:
        key = choice_key(dataset, seed, measure, args.epochs)
        if key in results["runs"]:
            continue
        start = time.perf_counter()
        mae, run = pretrain_once("quick", dataset=dataset, seed=seed, epochs=args.epochs)
        data = evaluation_split(dataset=dataset)
        if measure == "frozen":
            row = frozen_feature_table(mae, *data, pool="mean", seed=seed)
        else:
            device = next(mae.parameters()).device
            row = {name: finetune_once(run, *data, mae, pretrained=pretrained, seed=seed,
                                       device=device, **FINETUNE)["accuracy"]
                   for name, pretrained in (("MAE", True), ("from scratch", False))}
        results["runs"][key] = row
        write(results, args.output)
        print(f"{key}: {json.dumps(row)} ({time.perf_counter() - start:.0f} s)", flush=True)
    print_table(results)


def print_table(results: dict) -> None:
    """Mean and spread (min-max) over the seeds done, per dataset: the markdown table of
    benchmarks/README.md."""
    def cell(values: list[float]) -> str:
        return mean_range(values) if values else "-"

    runs = results["runs"]
    head = [f"{e} {m}" for e in ENCODERS for m in ("k-NN", "probe")]
    print("| dataset, pre-training | seeds | " + " | ".join(head)
          + " | fine-tuned MAE | from scratch |")
    print("|" + " --- |" * (len(head) + 4))
    budgets = sorted({split_choice_key(k)[3] for k in runs})
    for epochs in budgets:
        for dataset in DATASETS:
            frozen, tuned = ([runs[k] for s in SEEDS
                              if (k := choice_key(dataset, s, m, epochs)) in runs]
                             for m in ("frozen", "finetune"))
            if not frozen and not tuned:
                continue
            cells = [cell([r[e][m] for r in frozen]) for e in ENCODERS
                     for m in ("knn", "linear_probe")]
            cells += [cell([r[name] for r in tuned]) for name in ("MAE", "from scratch")]
            print(f"| `{dataset}`, {epochs} epochs | {len(frozen)}/{len(tuned)} | "
                  + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
