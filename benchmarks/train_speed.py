"""Speed of pre-training on this machine: the data pipelines alone, and full training steps.

Prints images/s for
  - the DataLoader pipeline (torchvision transforms per image, `--workers` processes),
  - the batched on-device pipeline (one grid_sample per batch), and their ratio;
  - the package's training step (`mt.train.train_step`: the batch with its on-device
    augmentation and masking noise, forward, backward, AdamW) of a model preset.

    python benchmarks/train_speed.py [--model vit_mini_patch4] [--batch-size 128] [--batches 20]
"""

from __future__ import annotations

import argparse
import statistics

import torch

import mae_tutorial as mt
from mae_tutorial.augment import AugmentedImages, DeviceAugment, loader_transform
from mae_tutorial.data import load_dataset
from mae_tutorial.runtime import time_calls


def rate(fn, images_per_call: int, calls: int, device: torch.device) -> float:
    """Images per second of `fn`'s median call, after one warm-up call."""
    return images_per_call / statistics.median(time_calls(fn, device, calls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="vit_mini_patch4", choices=sorted(mt.MODEL_PRESETS))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = mt.pick_device(args.device)
    b = args.batch_size
    data = load_dataset("synthetic", synthetic_size=max(5000, b * (args.batches + 1)))
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"batch {b}, dataset synthetic")

    # --- data pipelines alone
    loader = torch.utils.data.DataLoader(
        AugmentedImages(data, loader_transform(data.mean, data.std)), batch_size=b,
        sampler=[(i, i) for i in range(len(data))], num_workers=args.workers,
        persistent_workers=args.workers > 0)
    batches = iter(loader)
    r_loader = rate(lambda: next(batches)[0].to(device), b, args.batches, device)
    images = data.images.to(device)
    augment = DeviceAugment(data.mean, data.std)
    g = torch.Generator(device=device).manual_seed(0)
    r_device = rate(lambda: augment(images[torch.randint(0, len(data), (b,), device=device)], g),
                    b, args.batches, device)
    print(f"data, DataLoader ({args.workers} workers): {r_loader:9.0f} images/s")
    print(f"data, on the device (batched):     {r_device:9.0f} images/s  "
          f"({r_device / r_loader:.1f}x the DataLoader)")

    # --- the package's training step, data included
    cfg = mt.config.TrainConfig(model=args.model, batch_size=b, synthetic_size=len(data),
                                device=args.device)
    run, step = mt.lab.speed.training_step(cfg)
    r_step = rate(step, b, args.batches, device)
    print(f"train step (mt.train.train_step), model {args.model}, amp "
          f"{run.amp_dtype or 'off'}: {r_step:9.0f} images/s")

if __name__ == "__main__":
    main()
