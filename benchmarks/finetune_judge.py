"""A converged judge: fine-tune the book's MAE and the same ViT from scratch long enough to
reach their plateau, and record the test accuracy after every epoch (the curve that says
where the plateau is).

For each pre-training budget (`--pretrain-epochs`, the `quick` preset's 6 is the chapters')
and each seed, it pre-trains the `quick` preset on `--dataset` (data seed 0 for every run
seed, as `dataset_choice.py`), then fine-tunes its encoder, and the same architecture from
random weights, with chapter 7's recipe at base lr 1e-2 for `--finetune-epochs` epochs
(`mt.finetune.finetune(..., curve=True)`) on the 5,000 / 2,000 images of
`evaluation_split`. The fine-tuning seed is the run's seed.

    python benchmarks/finetune_judge.py                 # seeds 0 1 2, 6-epoch pre-training
    python benchmarks/finetune_judge.py --print         # the table of what is done so far
    python benchmarks/finetune_judge.py --ablations loss_on_all   # and that variant's MAE
    python benchmarks/finetune_judge.py --pretrain-epochs 18 --mae-only   # a bigger budget

With `--ablations`, each named row of `mt.lab.ablations.ABLATIONS` is pre-trained as the
ablations appendix pre-trains it (the same cached model for each seed) and fine-tuned as the
MAE is, under the encoder name "MAE, <row>"; the ViT from scratch does not depend on the row.

Every finished (budget, seed, encoder) is written at once to
mae_tutorial/results/finetune_judge.json and skipped on a restart.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time
from pathlib import Path

import torch
from ablations import ROOT, machine, write  # one home for the results files' format

from mae_tutorial.data import GENERATED, evaluation_split
from mae_tutorial.lab import finetune_once, pretrain_once
from mae_tutorial.lab.ablations import ABLATIONS
from mae_tutorial.lab.results import judge_key, split_judge_key
from mae_tutorial.viz import mean_range

RESULTS = ROOT / "mae_tutorial" / "results" / "finetune_judge.json"
ENCODERS = {"MAE": True, "from scratch": False}  # name -> pre-trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--print", action="store_true", help="print the table and stop")
    parser.add_argument("--dataset", default="synthetic", choices=("synthetic", *GENERATED))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--pretrain-epochs", nargs="+", type=int, default=[6])
    parser.add_argument("--finetune-epochs", type=int, default=30)
    parser.add_argument("--base-lr", type=float, default=1e-2)
    parser.add_argument("--ablations", nargs="+", default=[],
                        choices=[n for n in ABLATIONS if n != "baseline"],
                        help="also fine-tune these ablation rows' pre-trained encoders")
    parser.add_argument("--mae-only", action="store_true",
                        help="skip the ViT from scratch (it does not depend on the budget "
                             "or the row: its runs at the chapters' budget serve)")
    args = parser.parse_args()
    results = json.loads(args.output.read_text()) if args.output.exists() else {"runs": {}}
    if args.print:
        print_table(results)
        return
    results.update(machine=machine(), torch=torch.__version__,
                   date=datetime.date.today().isoformat(),
                   evaluation="chapter 7's fine-tuning recipe (mt.finetune.finetune), test "
                              "accuracy after each epoch; 5,000 train (data seed 1) / 2,000 "
                              "test images")
    os.chdir(ROOT / "book")  # the book's model cache
    print(results["machine"], flush=True)
    data = evaluation_split(dataset=args.dataset)
    for pretrain_epochs in args.pretrain_epochs:
        for seed in args.seeds:
            encoders = [(name, pretrained, {}) for name, pretrained in ENCODERS.items()
                        if pretrained or not args.mae_only]
            encoders += [(f"MAE, {row}", True, ABLATIONS[row].overrides)
                         for row in args.ablations]
            for encoder, pretrained, overrides in encoders:
                key = judge_key(args.dataset, pretrain_epochs, seed, encoder,
                                f"{args.finetune_epochs} epochs at {args.base_lr:g}")
                if key in results["runs"]:
                    continue
                start = time.perf_counter()
                mae, run = pretrain_once("quick", dataset=args.dataset, seed=seed,
                                         epochs=pretrain_epochs, **overrides)
                device = next(mae.parameters()).device
                row = finetune_once(run, *data, mae, pretrained=pretrained, seed=seed,
                                    device=device, epochs=args.finetune_epochs,
                                    base_lr=args.base_lr, curve=True)
                row["seconds"] = round(time.perf_counter() - start, 1)
                results["runs"][key] = row
                write(results, args.output)
                print(f"{key}: {row['accuracy']:.1f} ({row['seconds']:.0f} s); curve "
                      + " ".join(f"{a:.1f}" for a in row["curve"]), flush=True)
    print_table(results)


def print_table(results: dict) -> None:
    """Per (dataset, budget, encoder, schedule): the mean of the seeds' final accuracy with
    its min-max, and the mean curve at a few epochs, as markdown."""
    groups: dict[tuple, list[dict]] = {}
    for key, row in results["runs"].items():
        dataset, budget, _seed, encoder, schedule = split_judge_key(key)
        groups.setdefault((dataset, budget, schedule, encoder), []).append(row)
    print("| data, pre-training epochs | fine-tuning | encoder | seeds | final accuracy "
          "| mean curve (epoch: accuracy) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (dataset, budget, schedule, encoder), rows in sorted(groups.items()):
        final = [r["accuracy"] for r in rows]
        curves = [r["curve"] for r in rows]
        epochs = len(curves[0])
        marks = sorted({1, 3, 6, 9, 15, 20, 25, epochs} & set(range(1, epochs + 1)))
        curve = ", ".join(f"{e}: {statistics.mean(c[e - 1] for c in curves):.1f}"
                          for e in marks)
        print(f"| `{dataset}`, {budget} | {schedule} | {encoder} | {len(rows)} | "
              f"{mean_range(final)} | {curve} |")


if __name__ == "__main__":
    main()
