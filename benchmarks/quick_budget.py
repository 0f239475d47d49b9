"""What the quick budget buys: pre-train the `quick` preset on `synthetic` on this machine, then
print
  - the wall-clock time of the pre-training (start-up included),
  - the masked-patch loss on held-out images as a fraction of the loss of predicting zeros
    (1.0 = no better than nothing; the goal for two CPU minutes is at most 0.5),
  - k-NN and linear-probe accuracy of the frozen, mean-pooled features against the same
    encoder at its random initialization (5,000 / 2,000 images; the goal is +15 k-NN points).

    python benchmarks/quick_budget.py [--seed 0] [--output-dir runs/quick-budget]
"""

from __future__ import annotations

import argparse
import shutil
import time

import torch

import mae_tutorial as mt
from mae_tutorial import train as tr
from mae_tutorial.data import load_dataset
from mae_tutorial.evaluate import frozen_feature_report, reconstruction_score
from mae_tutorial.optim import autocast_dtype


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="runs/quick-budget")
    args = parser.parse_args()
    shutil.rmtree(args.output_dir, ignore_errors=True)
    cfg = tr.config_from_preset("quick", output_dir=args.output_dir, progress=False,
                                seed=args.seed)
    amp = autocast_dtype(torch.device("cpu"), cfg.amp)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, mixed precision "
          f"{amp or 'off (fp32)'}, preset quick, seed {args.seed}, dataset synthetic")
    start = time.perf_counter()
    summary = tr.train(cfg)
    seconds = time.perf_counter() - start
    mae = mt.mae_from_checkpoint(summary["checkpoint"])
    test_set = load_dataset("synthetic", train=False)
    score = reconstruction_score(mae, test_set, num_images=2000)
    print(f"{summary['steps']} steps in {seconds:.0f} s (training loss {summary['loss']:.4f})")
    print(f"held-out masked-patch loss {score['loss']:.4f}, predicting zeros "
          f"{score['zero_loss']:.4f}: ratio {score['ratio']:.3f}")
    torch.manual_seed(args.seed)
    random_init = mt.MaskedAutoencoderViT(**mae.config)
    train_set = load_dataset("synthetic", synthetic_size=5000, seed=1)
    test_set.images, test_set.labels = test_set.images[:2000], test_set.labels[:2000]
    ours = frozen_feature_report(mae, train_set, test_set, pool="mean")
    theirs = frozen_feature_report(random_init, train_set, test_set, pool="mean")
    for name, key in (("k-NN", "knn"), ("linear probe", "linear_probe")):
        print(f"{name}, mean-pooled: pre-trained {ours[key]:.1f}%, random init "
              f"{theirs[key]:.1f}%, gain {ours[key] - theirs[key]:+.1f} points")


if __name__ == "__main__":
    main()
