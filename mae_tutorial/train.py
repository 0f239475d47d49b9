"""Pre-training MAE (chapters 6 and 9): one loop for a CPU, one GPU (Colab's T4 to an H100)
or several GPUs.

    python -m mae_tutorial.train --preset quick                  # CPU, minutes, offline
    python -m mae_tutorial.train --preset full --dataset cifar10 # one GPU
    torchrun --nproc_per_node=4 -m mae_tutorial.train --preset full --dataset cifar10

Every step is a pure function of (seed, step): the data order, the augmentation and the masking
noise are drawn from generators seeded by the step's index, for the whole global batch, and each
process takes its share. So a resumed run continues exactly (bit for bit on a CPU), and N
processes train the same model as one process with the same global batch.

The loop reads as its stages: `setup` (process group, data, model, optimizer, schedule),
`resume_from` (a checkpoint), `train_step` (one optimizer step), `log_metrics` and
`save_run` (a checkpoint), all driven by `train`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .batches import load_training_data, step_batches
from .checkpoint import (
    CHECKPOINT,
    METRICS,
    check_writable,
    load_weights,
    read_training_checkpoint,
    run_folder_checkpoint,
    save_checkpoint,
    trim_metrics,
)
from .config import (
    TrainConfig,
    arg_parser,
    check_config,
    check_same_run,
    config_from_preset,
    config_to_resume,
    model_config,
    recovery_changes,
)
from .data import GENERATED, ImageSet
from .mae import MaskedAutoencoderViT, build_mae
from .optim import adamw, autocast_dtype, gpu_has_native_bf16, lr_at, param_groups
from .runtime import (
    failure_hint,
    join_process_group,
    pick_device,
    rng_state,
    set_rng_state,
    tf32,
)
from .vit import use_fused_attention


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the last good checkpoint is kept. Chapter 6."""


# ---------------------------------------------------------------------------------------------
# The stages of a run


@dataclass
class Run:
    """Everything a pre-training run holds while it trains (made by `setup`). Chapter 6."""

    cfg: TrainConfig
    device: torch.device
    rank: int
    world: int
    out: Path
    data: ImageSet
    model: MaskedAutoencoderViT
    forward: nn.Module  # the model as called: wrapped by DDP and/or torch.compile
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    total: int  # optimizer steps of the whole schedule
    warmup: int
    peak_lr: float
    start_step: int = 0

    @property
    def is_main(self) -> bool:  # rank 0 logs and writes checkpoints
        return self.rank == 0

    @property
    def checkpoint_path(self) -> Path:
        return self.out / CHECKPOINT

    @property
    def micro_steps_per_epoch(self) -> int:
        return len(self.data) // self.cfg.batch_size

    def log(self, message: str) -> None:
        if self.is_main:
            print(message)


def setup(cfg: TrainConfig) -> Run:
    """Stage 1: the process group (under torchrun), device, data, model, optimizer, mixed
    precision and the schedule of a new run. Chapter 6."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    check_config(cfg, world)
    out = Path(cfg.output_dir)
    check_writable(out)
    device, distributed = join_process_group(pick_device(cfg.device))
    check_amp(device, cfg.amp)
    # The process of global rank 0 downloads the dataset while every other one waits at a
    # barrier, then they read what it wrote: one download, on one node or several (so on
    # several nodes --data-root is a folder they all see, or filled on each beforehand).
    data = load_training_data(cfg, world, local_rank=rank)
    torch.manual_seed(cfg.seed)  # the same initial weights in every process
    amp_dtype = autocast_dtype(device, cfg.amp)
    model = build_mae(model_config(cfg), use_fused_attention(device, amp_dtype)).to(device)
    optimizer = adamw(param_groups(model, cfg.weight_decay), (cfg.beta1, cfg.beta2), device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    forward: nn.Module = model
    if distributed:
        forward = nn.parallel.DistributedDataParallel(  # the position tables are constant:
            model, device_ids=[device.index] if device.type == "cuda" else None,
            broadcast_buffers=False)  # nothing to broadcast at every forward
    if cfg.compile:
        forward = torch.compile(forward)
    per_epoch = len(data) // cfg.batch_size  # micro-steps per epoch
    total = cfg.max_steps or max(1, cfg.epochs * per_epoch // cfg.accum_steps)
    run = Run(cfg, device, rank, world, out, data, model, forward, optimizer, scaler, amp_dtype,
              total, warmup=max(1, round(cfg.warmup_fraction * total)),
              peak_lr=cfg.base_lr * cfg.batch_size * cfg.accum_steps / 256)
    run.log(f"device: {device}" + (f" x {world} processes" if distributed else ""))
    offline = {name: " (generated offline, not CIFAR-10)" for name in ("synthetic", *GENERATED)}
    offline["photos"] = " (crops of the shipped photographs, not CIFAR-10)"
    run.log(f"dataset: {cfg.dataset}" + offline.get(cfg.dataset, ""))
    return run


def check_amp(device: torch.device, amp: str) -> None:
    """Refuse `--amp bf16` on a GPU without bf16 in hardware (before Ampere: Colab's T4, a
    V100): PyTorch would emulate it, many times slower, without a word. Chapter 9."""
    if amp == "bf16" and device.type == "cuda" and not gpu_has_native_bf16(device):
        raise ValueError("--amp bf16: this GPU has no bf16 in hardware (that needs compute "
                         "capability 8.0, Ampere, or newer), so it would be emulated, many "
                         "times slower. Use --amp fp16 (fp16 with a gradient scaler) or --amp "
                         "auto, which picks it on this GPU; with --resume too: amp may change")


def read_resume_state(run: Run, state: dict[str, Any] | None = None) -> dict[str, Any]:
    """Stage 2a (with --resume): the run folder's checkpoint (`state`, if the caller has read
    it), read by every process once the process group exists, onto its own device. If any
    process cannot read it (on several nodes, an --output-dir that is not shared, say), every
    process raises: none is left waiting for the others at the first step. Chapter 9."""
    try:
        state, failure = run_folder_checkpoint(run.out, True, state, run.device), None
    except (OSError, ValueError) as exc:
        state, failure = None, exc
    if run.world > 1 and dist.is_initialized():
        failed = torch.tensor(float(failure is not None), device=run.device)
        dist.all_reduce(failed)
        if failed.item() and failure is None:
            raise RuntimeError("--resume: another process could not read the checkpoint (its "
                               "error says why); on several nodes, --output-dir must be a "
                               "folder every node sees")
    if failure is not None:
        raise failure
    assert state is not None
    return state


def resume_from(run: Run, state: dict[str, Any]) -> None:
    """Stage 2 (with --resume): weights, optimizer, scaler, random state and step from a
    checkpoint; metrics logged after it are dropped (they will be logged again). Chapter 6."""
    load_weights(run.model, state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    if run.scaler.is_enabled():  # fp16 now; a bf16, fp32 or CPU run saved no scale: start one
        if state["scaler"]:
            run.scaler.load_state_dict(state["scaler"])
        else:
            run.log("gradient scaler: the checkpoint ran without fp16, so it starts fresh")
    set_rng_state(state["rng"])
    run.start_step = state["step"]
    run.log(f"resumed from {run.checkpoint_path} at step {run.start_step}")
    if run.is_main:
        trim_metrics(run.out, run.start_step)


def train_step(run: Run, step: int, batches: Iterator[tuple[torch.Tensor, torch.Tensor]]
               ) -> tuple[torch.Tensor, float]:
    """Stage 3: one optimizer step (learning rate, `accum_steps` micro-steps of forward and
    backward under autocast, clipping, the scaled AdamW step). Returns the loss, averaged over
    all processes and left on the device (reading it would wait for the GPU), and the lr.
    Chapter 6."""
    cfg = run.cfg
    lr = lr_at(step, run.total, run.peak_lr, cfg.min_lr, run.warmup)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    loss_sum = torch.zeros((), device=run.device)
    for micro in range(cfg.accum_steps):
        imgs, noise = next(batches)
        sync = micro == cfg.accum_steps - 1 or not hasattr(run.forward, "no_sync")  # DDP
        with (nullcontext() if sync else run.forward.no_sync()), torch.autocast(
                run.device.type, dtype=run.amp_dtype or torch.float32,
                enabled=run.amp_dtype is not None):
            loss = run.forward(imgs, cfg.mask_ratio, noise, loss_on_all=cfg.loss_on_all)[0]
        run.scaler.scale(loss / cfg.accum_steps).backward()
        loss_sum += loss.detach()
    loss = loss_sum / cfg.accum_steps
    if run.world > 1:  # every process logs, and checks, the loss of the whole global batch
        dist.all_reduce(loss)
        loss /= run.world
    if cfg.clip_grad is not None:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(run.model.parameters(), cfg.clip_grad)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    return loss, lr


def log_metrics(run: Run, done: int, **values: Any) -> None:
    """Stage 4: append one line to metrics.jsonl (rank 0): the step, the epoch, and `values`
    (loss, lr and images/s; or the settings a resume changed). Chapter 6."""
    if run.is_main:
        epoch = done * run.cfg.accum_steps / run.micro_steps_per_epoch
        record = {"step": done, "epoch": epoch, **values}
        with open(run.out / METRICS, "a") as f:
            f.write(json.dumps(record) + "\n")


def save_run(run: Run, done: int) -> None:
    """Stage 5: write the checkpoint atomically (rank 0); every process waits for it. Chapter 6."""
    if run.is_main:
        save_checkpoint(run.checkpoint_path, {
            "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
            "scaler": run.scaler.state_dict(), "step": done,
            "epoch": done * run.cfg.accum_steps / run.micro_steps_per_epoch,
            "config": asdict(run.cfg), "model_config": asdict(run.model.config),
            "rng": rng_state()})
    if dist.is_initialized():
        dist.barrier()


def train(cfg: TrainConfig, resume: bool = False,
          state: dict[str, Any] | None = None) -> dict[str, Any]:
    """Pre-train an MAE as `cfg` says (chapter 6); returns a summary (steps, last loss,
    checkpoint path). With `resume`, continues the run in `cfg.output_dir` from its
    checkpoint (`state`, if the caller has read it already). On an NVIDIA GPU the run may use
    TF32 (`runtime.tf32`)."""
    with tf32(pick_device(cfg.device)):
        return _train(cfg, resume, state)


def _train(cfg: TrainConfig, resume: bool, state: dict[str, Any] | None) -> dict[str, Any]:
    if not resume:
        run_folder_checkpoint(cfg.output_dir, resume=False)  # never overwrites a run
    run = setup(cfg)
    if resume:  # read now that the process group exists, onto this process's device
        state = read_resume_state(run, state)
        check_same_run(cfg, state["config"])
        resume_from(run, state)
        changes = recovery_changes(cfg, state["config"])
        if changes:  # settings that exist for recovery (a NaN, another GPU) may change
            run.log("resumed with " + ", ".join(f"{k} {a!r} -> {b!r}"
                                                for k, (a, b) in changes.items()))
            log_metrics(run, run.start_step, resumed_with=changes)
    end = run.total if cfg.stop_after is None else min(run.total, run.start_step + cfg.stop_after)
    run.log(f"{run.total} steps of {cfg.batch_size * cfg.accum_steps} images, peak lr "
            f"{run.peak_lr:.2e}, {run.warmup} warm-up steps, mixed precision: "
            f"{run.amp_dtype or 'off (fp32)'}")
    batches = step_batches(cfg, run.data, run.device, run.start_step * cfg.accum_steps,
                           end * cfg.accum_steps, rank=run.rank, world=run.world)
    from tqdm import tqdm  # a text bar on stderr, also in notebooks (the pages leave stderr out)

    bar = tqdm(total=run.total, initial=run.start_step, disable=not (run.is_main and cfg.progress),
               desc="pre-training", dynamic_ncols=True, mininterval=1.0)
    last_saved, value, t0, seen = run.start_step, float("nan"), time.perf_counter(), 0
    first_bad = torch.full((), -1, device=run.device)  # the first step with a NaN/inf loss
    run.model.train()
    for step in range(run.start_step, end):
        loss, lr = train_step(run, step, batches)
        first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss), step, first_bad)
        seen += cfg.batch_size * cfg.accum_steps
        done = step + 1
        bar.update(1)
        logging = done % cfg.log_every == 0 or done == end
        saving = done % cfg.checkpoint_every == 0 or done == end
        if not (logging or saving):
            continue  # no host-device sync between logging intervals
        bad = int(first_bad.item())  # the same on every process: the loss is all-reduced
        if bad >= 0:
            bar.close()
            kept = run.checkpoint_path if last_saved > 0 or resume else "(none yet)"
            raise NonFiniteLossError(
                f"the loss is not finite at step {bad}; training stopped. The last good "
                f"checkpoint, {kept}, is kept (step {last_saved}). Lower --base-lr, set "
                "--clip-grad 1.0, or use --amp off, then --resume (these may change).")
        if logging:
            value = loss.item()
            elapsed = time.perf_counter() - t0
            rate = seen / elapsed if elapsed > 0 else float("nan")
            bar.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.0f}")
            log_metrics(run, done, loss=value, lr=lr, images_per_s=rate)
            t0, seen = time.perf_counter(), 0
        if saving:
            save_run(run, done)
            last_saved = done
    bar.close()
    finished = end == run.total
    run.log(("finished" if finished else f"stopped after step {end} of {run.total}; continue "
             "with --resume") + f". Checkpoint: {run.checkpoint_path}")
    return {"steps": end, "total_steps": run.total, "loss": value,
            "checkpoint": str(run.checkpoint_path), "finished": finished}


# ---------------------------------------------------------------------------------------------
# Command line


def main(argv: list[str] | None = None) -> int:
    """The command line (`python -m mae_tutorial.train --help`); returns the exit code.
    Chapter 6."""
    args = vars(arg_parser().parse_args(argv))
    preset, resume = args.pop("preset"), args.pop("resume")
    given = {k: v for k, v in args.items() if v is not None}
    if resume:
        # continue with the checkpoint's settings; only session fields may be given anew
        ckpt = Path(given.get("output_dir", TrainConfig.output_dir)) / CHECKPOINT
        if not ckpt.exists():
            print(f"error: --resume: no checkpoint at {ckpt}", file=sys.stderr)
            return 2
        # its settings only (the file mapped, no tensor read); train() reads the checkpoint
        # once every process has joined the process group, each onto its own device
        try:
            saved = read_training_checkpoint(ckpt, mmap=True)["config"]
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        cfg = config_to_resume(saved, **given)
    else:
        cfg = config_from_preset(preset, **given)
    try:
        train(cfg, resume=resume)
    except (ValueError, FileExistsError, FileNotFoundError, PermissionError, RuntimeError,
            NonFiniteLossError) as exc:
        print(f"error: {exc}{failure_hint(exc)}", file=sys.stderr)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
