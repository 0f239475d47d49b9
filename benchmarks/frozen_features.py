"""Frozen-feature quality of a pre-trained MAE against the same encoder with random weights.

Prints k-NN (k=20, cosine, T=0.07) and linear-probe accuracy (%) on `synthetic`, with cls-token
and mean-pooled features. Without --checkpoint it first pre-trains the quick preset (about a
CPU minute).

    python benchmarks/frozen_features.py [--checkpoint runs/mae/checkpoint.pth]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import mae_tutorial as mt
from mae_tutorial.data import evaluation_split
from mae_tutorial.evaluate import against_random_init


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--train-size", type=int, default=5000)
    parser.add_argument("--test-size", type=int, default=2000)
    args = parser.parse_args()
    checkpoint = args.checkpoint
    if checkpoint is None:
        out = Path(tempfile.mkdtemp()) / "quick"
        mt.train.train(mt.train.config_from_preset("quick", output_dir=str(out),
                                                   progress=False))
        checkpoint = out / "checkpoint.pth"
    mae = mt.mae_from_checkpoint(checkpoint)
    train_set, test_set = evaluation_split(args.train_size, args.test_size)
    print(f"checkpoint {checkpoint}; synthetic, {len(train_set)} train / {len(test_set)} test")
    print(f"{'encoder':<12}{'pool':<6}{'k-NN %':>8}{'linear %':>10}")
    for pool in ("cls", "mean"):
        for name, r in against_random_init(mae, train_set, test_set, pool).items():
            print(f"{name:<12}{pool:<6}{r['knn']:>8.1f}{r['linear_probe']:>10.1f}")


if __name__ == "__main__":
    main()
