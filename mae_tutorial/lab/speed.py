"""The speed of the real training step: what chapters and benchmarks time when they time
training (never a step re-typed beside `train.train_step`)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import statistics
import tempfile
from collections.abc import Callable

import torch

from ..batches import step_batches
from ..config import TrainConfig
from ..runtime import time_calls
from ..train import Run, setup, train_step


def training_step(cfg: TrainConfig) -> tuple[Run, Callable[[], torch.Tensor]]:
    """A run of `cfg` set up as the trainer sets it up, and a function that makes its next
    optimizer step with `train.train_step` (the step's batch with its augmentation and
    masking noise, forward, backward, AdamW) and returns the loss. Nothing is written: the
    run's folder is a new temporary one. The ablations appendix."""
    cfg = dataclasses.replace(cfg, output_dir=tempfile.mkdtemp(prefix="step_"), progress=False)
    with contextlib.redirect_stdout(io.StringIO()):  # setup's messages
        run = setup(cfg)
    run.model.train()
    batches = step_batches(cfg, run.data, run.device, stop=run.total * cfg.accum_steps)
    steps = itertools.count()
    return run, lambda: train_step(run, next(steps) % run.total, batches)[0]


def images_per_second(cfgs: dict[str, TrainConfig], steps: int = 4,
                      rounds: int = 3) -> dict[str, float]:
    """Training images per second of each configuration's real step (`training_step`), timed
    in `rounds` interleaved rounds of `steps` steps after one warm-up step each (so a slower
    moment of a shared machine hits all of them); the median step of the fastest round. The
    ablations appendix."""
    made = {name: training_step(cfg) for name, cfg in cfgs.items()}
    best = {name: float("inf") for name in made}
    for _ in range(rounds):
        for name, (run, step) in made.items():
            seconds = statistics.median(time_calls(step, run.device, steps))
            best[name] = min(best[name], seconds)
    return {name: cfgs[name].batch_size * cfgs[name].accum_steps / best[name] for name in made}
