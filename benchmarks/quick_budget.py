"""What the quick budget buys: pre-train the `quick` preset on `synthetic` on this machine,
then print the masked-patch loss on held-out images as a fraction of the loss of predicting
zeros (1.0 = no better than nothing; the goal for two CPU minutes is at most 0.5).

    python benchmarks/quick_budget.py [--output-dir runs/quick-budget]
"""

from __future__ import annotations

import argparse
import shutil
import time

import mae_tutorial as mt
from mae_tutorial import train as tr
from mae_tutorial.data import load_dataset
from mae_tutorial.evaluate import reconstruction_score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output-dir", default="runs/quick-budget")
    args = parser.parse_args()
    shutil.rmtree(args.output_dir, ignore_errors=True)
    cfg = tr.config_from_preset("quick", output_dir=args.output_dir, progress=False)
    start = time.perf_counter()
    summary = tr.train(cfg)
    seconds = time.perf_counter() - start
    model = mt.mae_from_preset(cfg.model, norm_pix_loss=cfg.norm_pix_loss)
    mt.load_weights(model, tr.read_training_checkpoint(summary["checkpoint"])["model"])
    score = reconstruction_score(model, load_dataset("synthetic", train=False), num_images=2000)
    print(f"{summary['steps']} steps in {seconds:.0f} s (training loss {summary['loss']:.4f})")
    print(f"held-out masked-patch loss {score['loss']:.4f}, predicting zeros "
          f"{score['zero_loss']:.4f}: ratio {score['ratio']:.3f}")


if __name__ == "__main__":
    main()
