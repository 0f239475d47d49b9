"""Pre-training MAE: one loop for a CPU, one GPU (Colab's T4 to an H100) or several GPUs.

    python -m mae_tutorial.train --preset quick                  # CPU, minutes, offline
    python -m mae_tutorial.train --preset full --dataset cifar10 # one GPU
    torchrun --nproc_per_node=4 -m mae_tutorial.train --preset full --dataset cifar10

Every step is a pure function of (seed, step): the data order, the augmentation and the masking
noise are drawn from generators seeded by the step's index, for the whole global batch, and each
process takes its share. So a resumed run continues exactly (bit for bit on a CPU), and N
processes train the same model as one process with the same global batch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .data import DATASETS, AugmentedImages, DeviceAugment, ImageSet, load_dataset, loader_transform
from .mae import PRESETS, MaskedAutoencoderViT, mae_from_preset
from .runtime import pick_device
from .weights import load_checkpoint, read_file

CHECKPOINT = "checkpoint.pth"
METRICS = "metrics.jsonl"


def _f(default: Any, help: str) -> Any:  # a dataclass field with its help text
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Everything a pre-training run depends on (saved in every checkpoint)."""

    # what to train, on what
    dataset: str = _f("synthetic", "'synthetic' (generated offline) or 'cifar10' (downloaded)")
    data_root: str = _f("data", "folder where datasets are stored or downloaded")
    synthetic_size: int = _f(50_000, "number of images in the synthetic training set")
    model: str = _f("cifar_tiny", f"model preset, one of {sorted(PRESETS)}")
    norm_pix_loss: bool = _f(True, "predict per-patch normalized pixels (the paper's target)")
    mask_ratio: float = _f(0.75, "fraction of patches removed from every image")
    # how long
    epochs: int = _f(100, "passes over the training set (unless max_steps is set)")
    max_steps: int | None = _f(None, "total optimizer steps; overrides epochs")
    stop_after: int | None = _f(None, "end this session after this many steps, with a "
                                      "checkpoint; --resume continues (schedule unchanged)")
    # optimization
    batch_size: int = _f(256, "images per micro-step, over all processes together")
    accum_steps: int = _f(1, "micro-steps accumulated into one optimizer step")
    base_lr: float = _f(1.5e-4, "learning rate per 256 images: lr = base_lr * batch * accum / 256")
    min_lr: float = _f(0.0, "learning rate at the end of the cosine schedule")
    warmup_fraction: float = _f(0.05, "fraction of the steps with a linear warmup")
    weight_decay: float = _f(0.05, "AdamW weight decay (not applied to norms and biases)")
    beta1: float = _f(0.9, "AdamW beta1")
    beta2: float = _f(0.95, "AdamW beta2 (0.95, as the paper)")
    clip_grad: float | None = _f(None, "clip the gradient norm to this value (off if None)")
    # how to run
    amp: str = _f("auto", "mixed precision: auto (bf16 if the GPU has it, else fp16 with a "
                          "gradient scaler; fp32 on CPU), bf16, fp16 or off")
    compile: bool = _f(False, "torch.compile the model (slow start, faster steps on GPUs)")
    pipeline: str = _f("device", "augmentation: 'device' (batched on the device, whole dataset "
                                 "in device memory) or 'loader' (DataLoader + torchvision)")
    num_workers: int = _f(2, "DataLoader worker processes (pipeline 'loader' only)")
    device: str = _f("auto", "auto (cuda, then mps, then cpu), or cpu, cuda, cuda:1, mps")
    seed: int = _f(0, "seed of the model's initialization, data order, augmentation and masks")
    output_dir: str = _f("runs/mae", "folder for the checkpoint and metrics.jsonl")
    checkpoint_every: int = _f(500, "write a checkpoint every this many steps (and at the end)")
    log_every: int = _f(10, "append a line to metrics.jsonl every this many steps")
    progress: bool = _f(True, "show a progress bar")


TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    # a couple of CPU minutes on 'synthetic': enough to see MAE learn
    "quick": dict(model="quick", synthetic_size=10_000, epochs=5, batch_size=128,
                  base_lr=1.5e-3, warmup_fraction=0.05, checkpoint_every=100, log_every=5),
    # one GPU: the CIFAR-scale ViT-Tiny MAE
    "full": dict(model="cifar_tiny", epochs=400, batch_size=256, base_lr=1.5e-4 * 4,
                 warmup_fraction=0.05, checkpoint_every=1000, log_every=50),
}
# Fields that may differ when a run is resumed (they do not change what is computed).
SESSION_FIELDS = {"stop_after", "device", "num_workers", "output_dir", "progress", "data_root",
                  "compile", "checkpoint_every", "log_every"}


def config_from_preset(name: str, **overrides: Any) -> TrainConfig:
    """A `TrainConfig` from a preset ('quick' or 'full'), with fields overridden by keyword."""
    if name not in TRAIN_PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(TRAIN_PRESETS)}")
    return TrainConfig(**{**TRAIN_PRESETS[name], **overrides})


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


# ---------------------------------------------------------------------------------------------
# Pieces of the loop


def lr_at(step: int, total_steps: int, peak_lr: float, min_lr: float, warmup_steps: int) -> float:
    """Linear warmup to `peak_lr`, then a half-cycle cosine down to `min_lr`, per iteration."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr + (peak_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay for weight matrices (and tokens), none for norms and biases (1-D)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def autocast_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """The mixed-precision dtype for this hardware and setting (None: full fp32)."""
    if amp not in ("auto", "bf16", "fp16", "off"):
        raise ValueError(f"amp must be auto, bf16, fp16 or off, got {amp!r}")
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":  # bf16 needs compute capability 8.0 (Ampere); a T4 (7.5) gets fp16
        return torch.bfloat16 if torch.cuda.get_device_capability(device)[0] >= 8 else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def _step_generator(seed: int, it: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + it)


def _epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7_919 + epoch))


class StepBatchSampler(torch.utils.data.Sampler):
    """Yields, for micro-step `it` onwards, this process's share of the global batch as
    (index, augmentation seed) pairs; the data order is reshuffled every epoch."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int, stop: int,
                 rank: int = 0, world: int = 1) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.stop, self.rank, self.world = start, stop, rank, world
        self.per_epoch = n // batch_size

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        local = self.batch_size // self.world
        for it in range(self.start, self.stop):
            epoch, pos = divmod(it, self.per_epoch)
            order = _epoch_order(self.seed, epoch, self.n)
            chunk = order[pos * self.batch_size:(pos + 1) * self.batch_size]
            first = self.rank * local
            yield [(int(chunk[j]), self.seed * 1_000_003 + it * self.batch_size + j)
                   for j in range(first, first + local)]


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write atomically: a temporary file in the same folder, flushed and fsynced, then renamed
    over the old checkpoint. A crash at any moment leaves the previous or the new file whole."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint safely (weights_only), with a clear error if it is damaged."""
    state = read_file(path)
    if not isinstance(state, dict) or not {"model", "step", "config"} <= set(state):
        raise ValueError(f"{os.fspath(path)!r} is not a training checkpoint of this package "
                         "(it lacks 'model', 'step' or 'config')")
    return state


def read_metrics(output_dir: str | Path) -> list[dict[str, Any]]:
    """The metrics a run logged (one dict per line of metrics.jsonl)."""
    path = Path(output_dir) / METRICS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_to_tuple(state["python"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_tuple(x: Any) -> Any:
    return tuple(_to_tuple(v) for v in x) if isinstance(x, list | tuple) else x


def _check_writable(output_dir: Path) -> None:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise PermissionError(f"the output directory {str(output_dir)!r} is not writable ({exc});"
                              " choose another with --output-dir") from exc


# ---------------------------------------------------------------------------------------------
# The loop


def train(cfg: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Pre-train an MAE as `cfg` says; returns a summary (steps, last loss, checkpoint path).

    With `resume`, continues the run in `cfg.output_dir` from its checkpoint.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    _validate(cfg, world)
    main = rank == 0
    out = Path(cfg.output_dir)
    _check_writable(out)
    ckpt_path = out / CHECKPOINT
    state = None
    if resume:
        if not ckpt_path.exists():
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}; start without "
                                    "--resume, or point --output-dir at the run to continue")
        state = read_checkpoint(ckpt_path)
        _check_same_run(cfg, state["config"])
    elif ckpt_path.exists():
        raise FileExistsError(f"{ckpt_path} exists: pass --resume to continue that run, or "
                              "choose another --output-dir (nothing was overwritten)")

    if main:  # temporary files of checkpoint writes that a crash interrupted
        for stale in out.glob(f".{CHECKPOINT}.tmp-*"):
            stale.unlink(missing_ok=True)
    device = pick_device(cfg.device)
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    log = print if main else (lambda *a, **k: None)
    log(f"device: {device}" + (f" x {world} processes" if world > 1 else ""))
    log(f"dataset: {cfg.dataset}" + (" (generated offline, not CIFAR-10)"
                                     if cfg.dataset == "synthetic" else ""))
    data = load_dataset(cfg.dataset, cfg.data_root, train=True,
                        synthetic_size=cfg.synthetic_size, seed=cfg.seed)

    torch.manual_seed(cfg.seed)  # the same initial weights in every process
    model = mae_from_preset(cfg.model, norm_pix_loss=cfg.norm_pix_loss).to(device)
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=0.0,
                                  betas=(cfg.beta1, cfg.beta2))
    amp_dtype = autocast_dtype(device, cfg.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    start_step = 0
    if state is not None:
        load_checkpoint(model, state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        start_step = state["step"]
        log(f"resumed from {ckpt_path} at step {start_step}")
        if main:
            _trim_metrics(out / METRICS, start_step)

    run = model
    if world > 1:
        run = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        run = torch.compile(run)

    per_epoch = len(data) // cfg.batch_size  # micro-steps per epoch (the last partial is dropped)
    total = cfg.max_steps or max(1, cfg.epochs * per_epoch // cfg.accum_steps)
    end = total if cfg.stop_after is None else min(total, start_step + cfg.stop_after)
    warmup = max(1, round(cfg.warmup_fraction * total))
    peak_lr = cfg.base_lr * cfg.batch_size * cfg.accum_steps / 256
    local = cfg.batch_size // world
    log(f"{total} steps of {cfg.batch_size * cfg.accum_steps} images, peak lr {peak_lr:.2e}, "
        f"{warmup} warm-up steps, mixed precision: {amp_dtype or 'off (fp32)'}")

    batches = _batches(cfg, data, device, start_step * cfg.accum_steps,
                       end * cfg.accum_steps, rank, world)
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=start_step, disable=not (main and cfg.progress),
               desc="pre-training", dynamic_ncols=True)
    last_saved, loss_value, t0, seen = start_step, float("nan"), time.perf_counter(), 0
    model.train()
    for step in range(start_step, end):
        lr = lr_at(step, total, peak_lr, cfg.min_lr, warmup)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = torch.zeros((), device=device)
        for micro in range(cfg.accum_steps):
            imgs, noise = next(batches)
            sync = micro == cfg.accum_steps - 1 or world == 1
            with (nullcontext() if sync else run.no_sync()), torch.autocast(
                    device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                loss = run(imgs, cfg.mask_ratio, noise)[0]
            scaler.scale(loss / cfg.accum_steps).backward()
            loss_sum += loss.detach()
            seen += local * world
        loss_value = loss_sum.item() / cfg.accum_steps
        if not math.isfinite(loss_value):
            bar.close()
            raise NonFiniteLossError(
                f"the loss is {loss_value} at step {step}; training stopped. The last good "
                f"checkpoint, {ckpt_path if last_saved > 0 or resume else '(none yet)'}, is "
                f"kept (step {last_saved}). Lower --base-lr, set --clip-grad 1.0, or use "
                "--amp off, then --resume.")
        if cfg.clip_grad is not None:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

        done = step + 1
        bar.update(1)
        if main and (done % cfg.log_every == 0 or done == end):
            elapsed = time.perf_counter() - t0
            rate = seen / elapsed if elapsed > 0 else float("nan")
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.0f}")
            record = {"step": done, "epoch": done * cfg.accum_steps / per_epoch,
                      "loss": loss_value, "lr": lr, "images_per_s": rate}
            with open(out / METRICS, "a") as f:
                f.write(json.dumps(record) + "\n")
            t0, seen = time.perf_counter(), 0
        if done % cfg.checkpoint_every == 0 or done == end:
            if main:
                save_checkpoint(ckpt_path, _checkpoint_state(model, optimizer, scaler, done,
                                                             per_epoch, cfg))
            last_saved = done
            if world > 1:
                dist.barrier()
    bar.close()
    finished = end == total
    log(("finished" if finished else f"stopped after step {end} of {total}; continue with "
         "--resume") + f". Checkpoint: {ckpt_path}")
    return {"steps": end, "total_steps": total, "loss": loss_value, "checkpoint": str(ckpt_path),
            "finished": finished}


def _validate(cfg: TrainConfig, world: int) -> None:
    if cfg.dataset not in DATASETS:
        raise ValueError(f"unknown dataset {cfg.dataset!r}; choose one of {list(DATASETS)}")
    if cfg.model not in PRESETS:
        raise ValueError(f"unknown model preset {cfg.model!r}; choose one of {sorted(PRESETS)}")
    if cfg.pipeline not in ("device", "loader"):
        raise ValueError(f"pipeline must be 'device' or 'loader', got {cfg.pipeline!r}")
    if cfg.batch_size < world:
        raise ValueError(f"batch_size {cfg.batch_size} is smaller than the number of processes "
                         f"({world}); every process needs at least one image")
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} does not split evenly over {world} "
                         f"processes; use a multiple of {world}")
    for name in ("batch_size", "accum_steps", "checkpoint_every", "log_every"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(cfg, name)}")
    if cfg.dataset == "synthetic" and cfg.synthetic_size < cfg.batch_size:
        raise ValueError(f"synthetic_size {cfg.synthetic_size} is smaller than one batch "
                         f"({cfg.batch_size})")


def _check_same_run(cfg: TrainConfig, saved: dict[str, Any]) -> None:
    differ = [f"{k}: checkpoint {saved[k]!r}, now {v!r}" for k, v in asdict(cfg).items()
              if k not in SESSION_FIELDS and k in saved and _to_tuple(saved[k]) != v]
    if differ:
        raise ValueError("--resume continues a run with its own settings, but these differ: "
                         + "; ".join(differ) + ". Drop them from the command line (the "
                         "checkpoint's values are used), or start a new run in another "
                         "--output-dir")


def _trim_metrics(path: Path, step: int) -> None:
    """Drop metric lines logged after the checkpoint (they will be logged again)."""
    if path.exists():
        keep = [line for line in path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in keep))


def _checkpoint_state(model: MaskedAutoencoderViT, optimizer: torch.optim.Optimizer,
                      scaler: torch.amp.GradScaler, step: int, per_epoch: int,
                      cfg: TrainConfig) -> dict[str, Any]:
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(), "step": step,
            "epoch": step * cfg.accum_steps / per_epoch, "config": asdict(cfg),
            "model_config": dict(model.config), "rng": _rng_state()}


def _batches(cfg: TrainConfig, data: ImageSet, device: torch.device, start: int, stop: int,
             rank: int, world: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images, masking noise) for this process, micro-step by micro-step from `start`."""
    local = cfg.batch_size // world
    share = slice(rank * local, (rank + 1) * local)
    size = PRESETS[cfg.model]["img_size"]
    num_patches = (size // PRESETS[cfg.model]["patch_size"]) ** 2

    def noise_for(it: int) -> torch.Tensor:
        g = _step_generator(cfg.seed + 1, it, device)
        return torch.rand(cfg.batch_size, num_patches, generator=g, device=device)[share]

    if cfg.pipeline == "device":
        images = data.images.to(device)  # the whole dataset, uint8, on the device
        augment = DeviceAugment(data.mean, data.std, size)
        per_epoch = len(data) // cfg.batch_size
        for it in range(start, stop):
            epoch, pos = divmod(it, per_epoch)
            order = _epoch_order(cfg.seed, epoch, len(data))
            idx = order[pos * cfg.batch_size:(pos + 1) * cfg.batch_size][share].to(device)
            g = _step_generator(cfg.seed, it, device)
            boxes, flip = augment.sample(cfg.batch_size, *images.shape[-2:], g, device)
            yield augment.apply(images[idx], boxes[share], flip[share]), noise_for(it)
    else:
        dataset = AugmentedImages(data, loader_transform(data.mean, data.std, size))
        sampler = StepBatchSampler(len(data), cfg.batch_size, cfg.seed, start, stop, rank, world)
        loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=sampler, num_workers=cfg.num_workers,
            pin_memory=device.type == "cuda", persistent_workers=cfg.num_workers > 0)
        for it, (imgs, _) in zip(range(start, stop), loader, strict=True):
            yield imgs.to(device, non_blocking=True), noise_for(it)


# ---------------------------------------------------------------------------------------------
# Command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mae_tutorial.train",
        description="Pre-train a Masked Autoencoder. Runs offline on the generated 'synthetic' "
                    "dataset by default. Under torchrun it uses DistributedDataParallel.")
    p.add_argument("--preset", default="quick", choices=sorted(TRAIN_PRESETS),
                   help="starting configuration: quick (CPU, minutes) or full (GPU)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --output-dir from its checkpoint")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = {"int": int, "float": float, "str": str}.get(
            str(f.type).replace(" | None", ""), str)
        if str(f.type) == "bool":
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                           help=f.metadata["help"])
        else:
            p.add_argument(flag, type=kind, default=None, help=f.metadata["help"],
                           **({"choices": list(DATASETS)} if f.name == "dataset" else {}))
    return p


def main(argv: list[str] | None = None) -> int:
    args = vars(_parser().parse_args(argv))
    preset, resume = args.pop("preset"), args.pop("resume")
    given = {k: v for k, v in args.items() if v is not None}
    if resume:
        # continue with the checkpoint's settings; only session fields may be given anew
        ckpt = Path(given.get("output_dir", TrainConfig.output_dir)) / CHECKPOINT
        if not ckpt.exists():
            print(f"error: --resume: no checkpoint at {ckpt}", file=sys.stderr)
            return 2
        saved = read_checkpoint(ckpt)["config"]
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        cfg = TrainConfig(**{k: _to_tuple(v) for k, v in saved.items() if k in known})
        cfg = dataclasses.replace(cfg, **given)
    else:
        cfg = config_from_preset(preset, **given)
    try:
        train(cfg, resume=resume)
    except (ValueError, FileExistsError, FileNotFoundError, PermissionError, RuntimeError,
            NonFiniteLossError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
