"""Partial fine-tuning (the paper's Sec. 4.3, Fig. 9) at small scale, on this machine: the
book's shared model (the `quick` preset) and the same encoder from random weights, each
fine-tuned with only its last k Transformer blocks trained (`tune_blocks`; k = 0 is the head
and its norm alone, k = depth is chapter 7's full fine-tuning), with chapter 7's short recipe
and two seeds; then all of it again with a schedule three times as long, since the paper
gives fewer tuned blocks more epochs (appendix A.1).

    python benchmarks/partial_finetuning.py              # about 20 minutes on 2 CPU cores

Writes mae_tutorial/results/partial_finetuning.json (shipped with the package) after every
run, atomically, with the machine, the date and torch's version; the after-MAE page reads it
and checks its full fine-tuning against the book's own model. Each fine-tuning is also kept
beside the model (`finetune_once`), so an interrupted sweep continues where it stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import time
from pathlib import Path

import torch
from ablations import ROOT, machine, write  # one home for the results files' format

from mae_tutorial.data import evaluation_split
from mae_tutorial.finetune import SHORT_FINETUNE
from mae_tutorial.lab import book_model, finetune_once

RESULTS = ROOT / "mae_tutorial" / "results" / "partial_finetuning.json"
SEEDS = (0, 1)
LONG_EPOCHS = 9  # three times the short recipe's 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.chdir(ROOT / "book")  # the book's cache: the model shared with the chapters
    mae, run = book_model()
    device = next(mae.parameters()).device
    depth = len(mae.blocks)
    data = evaluation_split()
    results = {"machine": machine(), "torch": torch.__version__,
               "date": datetime.date.today().isoformat(), "model": dataclasses.asdict(mae.config),
               "depth": depth, "recipe": SHORT_FINETUNE, "long_epochs": LONG_EPOCHS,
               "dataset": "synthetic (generated offline): the book's quick MAE, fine-tuned "
                          "on 5,000 labelled images, tested on 2,000 others",
               "runs": []}
    print(f"{results['machine']}, torch {results['torch']}", flush=True)
    plan = [(pretrained, k, epochs) for epochs in (SHORT_FINETUNE["epochs"], LONG_EPOCHS)
            for pretrained in (True, False) for k in (0, 1, 2, depth)]
    for pretrained, k, epochs in plan:
        for seed in SEEDS:
            start = time.perf_counter()
            which = {} if k == depth else {"tune_blocks": k}  # all: chapter 7's call
            tuned = finetune_once(run, *data, mae, pretrained=pretrained, seed=seed,
                                  device=device, **{**SHORT_FINETUNE, "epochs": epochs},
                                  **which)
            row = {"encoder": "MAE" if pretrained else "random init", "blocks": k,
                   "epochs": epochs, "seed": seed, "accuracy": tuned["accuracy"]}
            results["runs"].append(row)
            write(results, args.output)
            seconds = time.perf_counter() - start  # about 0 when kept from an earlier run
            print(f"{row['encoder']:>12}, {k} of {depth} blocks tuned, {epochs:>2} epochs, "
                  f"seed {seed}: {row['accuracy']:5.1f}%  ({seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
