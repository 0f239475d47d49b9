"""Speed of pre-training on this machine: the data pipelines alone, and full training steps.

Prints images/s for
  - the DataLoader pipeline (torchvision transforms per image, `--workers` processes),
  - the batched on-device pipeline (one grid_sample per batch), and their ratio;
  - a training step (forward + backward + AdamW) of a model preset, with and without data.

    python benchmarks/train_speed.py [--model quick] [--batch-size 128] [--batches 20]
"""

from __future__ import annotations

import argparse
import time

import torch

import mae_tutorial as mt
from mae_tutorial.augment import AugmentedImages, DeviceAugment, loader_transform
from mae_tutorial.data import load_dataset


def rate(fn, images_per_call: int, calls: int) -> float:
    fn()  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return images_per_call * calls / (time.perf_counter() - start)


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
    r_loader = rate(lambda: next(batches)[0].to(device), b, args.batches)
    images = data.images.to(device)
    augment = DeviceAugment(data.mean, data.std)
    g = torch.Generator(device=device).manual_seed(0)
    r_device = rate(lambda: augment(images[torch.randint(0, len(data), (b,), device=device)], g),
                    b, args.batches)
    print(f"data, DataLoader ({args.workers} workers): {r_loader:9.0f} images/s")
    print(f"data, on the device (batched):     {r_device:9.0f} images/s  "
          f"({r_device / r_loader:.1f}x the DataLoader)")

    # --- training steps
    torch.manual_seed(0)
    model = mt.mae_from_preset(args.model, norm_pix_loss=True).to(device).train()
    opt = torch.optim.AdamW(mt.optim.param_groups(model, 0.05), lr=1e-4, betas=(0.9, 0.95))
    amp = mt.optim.autocast_dtype(device, "auto")
    fixed = augment(images[:b], g)

    def step(imgs):
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss = model(imgs, 0.75)[0]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    r_step = rate(lambda: step(fixed), b, args.batches)
    r_full = rate(lambda: step(augment(images[torch.randint(0, len(data), (b,), device=device)],
                                       g)), b, args.batches)
    print(f"train step, model {args.model}, amp {amp or 'off'}:  {r_step:9.0f} images/s "
          "(data already prepared)")
    print(f"train step + on-device augmentation:  {r_full:9.0f} images/s")


if __name__ == "__main__":
    main()
