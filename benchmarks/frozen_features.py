"""Frozen-feature quality of a pre-trained MAE against the same encoder with random weights.

k-NN (k=20, cosine, T=0.07) and linear-probe accuracy (%) on `synthetic`, with cls-token and
mean-pooled features (`mt.evaluate.against_random_init`: chapter 7's results table).

    python benchmarks/frozen_features.py --checkpoint runs/mae/checkpoint.pth   # one model
    python benchmarks/frozen_features.py --seeds 0 1 2    # the book's model, three seeds

With `--seeds`, each seed's `quick` pre-training is the book's own (`mt.lab.pretrain_once`,
data seed 0 for every run seed, as `dataset_choice.py` and `finetune_judge.py`: their cached
models serve) and is compared with the random initialization that seed gives. Each finished
seed is written at once to mae_tutorial/results/frozen_features.json (chapter 7 reads it) and
skipped on a restart. Without either option it pre-trains the quick preset once in a
temporary folder (about a CPU minute) and prints its table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
from pathlib import Path

import torch
from ablations import ROOT, machine, write  # one home for the results files' format

import mae_tutorial as mt
from mae_tutorial.data import evaluation_split
from mae_tutorial.evaluate import against_random_init
from mae_tutorial.lab import pretrain_once
from mae_tutorial.lab.results import frozen_key

RESULTS = ROOT / "mae_tutorial" / "results" / "frozen_features.json"


def table(mae: mt.MaskedAutoencoderViT, train_set, test_set, seed: int = 0) -> dict:
    """pool ("cls", "mean") -> encoder ("pre-trained", "random init", "gain") -> measures."""
    return {pool: against_random_init(mae, train_set, test_set, pool, seed=seed)
            for pool in ("cls", "mean")}


def print_table(rows: dict) -> None:
    print(f"{'encoder':<12}{'pool':<6}{'k-NN %':>8}{'linear %':>10}")
    for pool, by_encoder in rows.items():
        for name, r in by_encoder.items():
            print(f"{name:<12}{pool:<6}{r['knn']:>8.1f}{r['linear_probe']:>10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help="the book's quick pre-training with these run seeds, cached")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--train-size", type=int, default=5000)
    parser.add_argument("--test-size", type=int, default=2000)
    args = parser.parse_args()
    train_set, test_set = evaluation_split(args.train_size, args.test_size)
    if args.seeds is None:
        checkpoint = args.checkpoint
        if checkpoint is None:
            out = Path(tempfile.mkdtemp()) / "quick"
            mt.train.train(mt.train.config_from_preset("quick", output_dir=str(out),
                                                       progress=False))
            checkpoint = out / "checkpoint.pth"
        mae = mt.mae_from_checkpoint(checkpoint)
        print(f"checkpoint {checkpoint}; synthetic, {len(train_set)} train / "
              f"{len(test_set)} test")
        print_table(table(mae, train_set, test_set))
        return
    results = json.loads(args.output.read_text()) if args.output.exists() else {"runs": {}}
    results.update(machine=machine(), torch=torch.__version__,
                   date=datetime.date.today().isoformat(),
                   evaluation=f"mt.evaluate.against_random_init, cls and mean pooling; "
                              f"{len(train_set):,} train (data seed 1) / {len(test_set):,} "
                              "test images; random init with the run's seed")
    os.chdir(ROOT / "book")  # the book's model cache
    print(results["machine"], flush=True)
    for seed in args.seeds:
        key = frozen_key(train_set.name, seed)
        if key in results["runs"]:
            continue
        mae, _ = pretrain_once("quick", dataset=train_set.name, seed=seed, epochs=6)
        results["runs"][key] = table(mae, train_set, test_set, seed=seed)
        write(results, args.output)
        print(f"seed {seed}:")
        print_table(results["runs"][key])


if __name__ == "__main__":
    main()
