"""What the book's shared model learns: pre-train the `quick` preset on `synthetic` on this
machine, then print
  - the wall-clock time of the pre-training (start-up included),
  - the masked-patch loss on held-out images as a fraction of the loss of predicting zeros
    (1.0 = no better than nothing; the goal is at most 0.5),
  - k-NN and linear-probe accuracy of the frozen, mean-pooled features against the same
    encoder at its random initialization (5,000 / 2,000 images),
  - with --finetune, chapter 7's short fine-tuning of the encoder and of the same ViT from
    scratch, and its seconds.

    python benchmarks/quick_budget.py [--seed 0] [--epochs 6] [--amp auto|off] [--finetune]
"""

from __future__ import annotations

import argparse
import shutil
import time

import torch

import mae_tutorial as mt
from mae_tutorial import train as tr
from mae_tutorial.data import evaluation_split, load_dataset
from mae_tutorial.evaluate import against_random_init, reconstruction_score
from mae_tutorial.optim import autocast_dtype


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="runs/quick-budget")
    parser.add_argument("--epochs", type=int, default=None, help="the preset's if not given")
    parser.add_argument("--amp", default="auto", help="auto, bf16 or off (fp32)")
    parser.add_argument("--finetune", action="store_true",
                        help="also fine-tune as chapter 7 does (pre-trained and from scratch)")
    args = parser.parse_args()
    shutil.rmtree(args.output_dir, ignore_errors=True)
    epochs = {} if args.epochs is None else {"epochs": args.epochs}
    cfg = tr.config_from_preset("quick", output_dir=args.output_dir, progress=False,
                                seed=args.seed, amp=args.amp, **epochs)
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
    train_set, test_set = evaluation_split()
    rows = against_random_init(mae, train_set, test_set, seed=args.seed)
    for name, key in (("k-NN", "knn"), ("linear probe", "linear_probe")):
        print(f"{name}, mean-pooled: pre-trained {rows['pre-trained'][key]:.1f}%, random init "
              f"{rows['random init'][key]:.1f}%, gain {rows['gain'][key]:+.1f} points")
    if args.finetune:
        for pretrained in (True, False):
            start = time.perf_counter()
            tuned = mt.finetune.finetune(train_set, test_set, mae, pretrained=pretrained,
                                         seed=0, device="cpu",
                                         **mt.finetune.SHORT_FINETUNE)
            print(f"fine-tuned {'pre-trained' if pretrained else 'from scratch'}: "
                  f"{tuned['accuracy']:.1f}% after {tuned['steps']} steps in "
                  f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
