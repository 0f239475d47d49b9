"""The precision path of Colab's T4, in short, on a CPU (run by tools/colab_sim.py with the
simulation's Python, the package installed there from a wheel).

    python fp16_check.py [--steps 40] [--synthetic-size N] [--tolerance 0.01]

A Colab T4 has no bf16 in hardware, so the book's training there runs under fp16 autocast with
a gradient scaler (`optim.autocast_dtype(device, "fp16")`, `train.setup`'s GradScaler). A CPU
runs that path too, ~10x slower than fp32, so this check trains only the first `--steps` steps
of the `quick` preset, twice from the same seed (the same weights, batches and masks): in fp32
(`amp="off"`) and in fp16 (`amp="fp16"`), both with the package's own `train.setup` and
`train.train_step`. It prints one JSON line (torch, the autocast dtype, whether the scaler was
on, the losses, their largest relative difference, the skipped steps, the seconds of each run)
and exits 1, saying why, if the fp16 run is not what a T4 needs: no float16 autocast or no
scaler (this torch's GradScaler may not support a CPU), a loss that is not finite, more than
`--max-skipped` steps skipped by the scaler after the first `--grace`, a loss that does not fall
as the fp32 one does, or a last loss further than `--tolerance` (relative) from fp32's.

The tolerance, from a measurement: on the book's 2-core CPU with torch 2.14.1, the 40 steps of
the quick preset (its 10,000 images) gave losses 1.53399 -> 0.66436 in fp32 and 1.53400 ->
0.66436 in fp16, at most 0.0098% apart over the steps and 0.0003% at the last, the scaler
skipping none (fp32 19 s, fp16 198 s, with another job on the CPU). 1% is a hundred times the
largest difference, room for Colab's torch and other CPUs, whose fp16 kernels round otherwise,
and below what one step moves the loss at this stage (1.4% on average: it falls 57% in 40
steps), so a run that fell a step behind fails it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch

TOLERANCE = 0.01     # relative difference of the last losses allowed (the docstring says why)
MAX_SKIPPED = 3      # steps the scaler may skip after the first GRACE ones
GRACE = 2            # its first steps, where the initial scale (65536) may overflow
WINDOW = 3           # steps averaged at each end to tell whether the loss fell


@dataclasses.dataclass(frozen=True)
class Trace:
    """What one run did: its loss and the scaler's scale after each step."""

    amp: str                       # the config's amp setting
    amp_dtype: str | None          # the autocast dtype the package chose ('float16', None)
    scaler_enabled: bool
    losses: list[float]
    scales: list[float]            # after each step's update (1.0 without a scaler)
    skipped: list[int]             # steps whose update the scaler skipped (its scale fell)
    seconds: float
    total: int                     # steps of the whole run the config describes


def cpu_scaler_problem() -> str | None:
    """Why this torch cannot run a gradient scaler on a CPU, or None if it can
    (`torch.amp.GradScaler("cpu")`, which recent torch has)."""
    version = torch.__version__
    if not hasattr(torch, "amp") or not hasattr(torch.amp, "GradScaler"):
        return (f"torch {version} has no torch.amp.GradScaler (it came in torch 2.3), so a "
                "gradient scaler cannot run on a CPU here; the fp16 path is not checked")
    try:
        scaler = torch.amp.GradScaler("cpu")
    except (RuntimeError, TypeError, ValueError, AssertionError) as exc:
        return (f"torch {version} cannot make a GradScaler for the CPU ({exc}); the fp16 "
                "path is not checked")
    if not scaler.is_enabled():
        return (f"torch {version} made a GradScaler for the CPU but disabled it; the fp16 "
                "path is not checked")
    return None


def trace(cfg: Any, steps: int) -> Trace:
    """Train the first `steps` optimizer steps of `cfg` (a `TrainConfig`) on the CPU with
    `train.setup` and `train.train_step`, in a temporary folder, and record the run."""
    from mae_tutorial.batches import step_batches
    from mae_tutorial.train import setup, train_step

    with tempfile.TemporaryDirectory(prefix="fp16_check_") as out:
        cfg = dataclasses.replace(cfg, output_dir=out, data_root=out, device="cpu",
                                  progress=False)
        with contextlib.redirect_stdout(io.StringIO()):  # setup's messages
            run = setup(cfg)
        run.model.train()
        batches = step_batches(cfg, run.data, run.device, stop=steps * cfg.accum_steps)
        enabled = run.scaler.is_enabled()
        losses: list[float] = []
        scales: list[float] = []
        skipped: list[int] = []
        start = time.perf_counter()
        for step in range(steps):
            before = run.scaler.get_scale() if enabled else 1.0
            loss, _ = train_step(run, step, batches)
            losses.append(float(loss))
            scales.append(run.scaler.get_scale() if enabled else 1.0)
            if scales[-1] < before:  # the scaler backs off only when it skipped the step
                skipped.append(step)
        seconds = time.perf_counter() - start
    dtype = None if run.amp_dtype is None else str(run.amp_dtype).removeprefix("torch.")
    return Trace(cfg.amp, dtype, enabled, losses, scales, skipped, seconds, run.total)


def fall(losses: list[float]) -> float:
    """How much a loss fell, relatively: 1 - mean(last WINDOW) / mean(first WINDOW)."""
    window = max(1, min(WINDOW, len(losses) // 2))
    first = sum(losses[:window]) / window
    last = sum(losses[-window:]) / window
    return 1 - last / first if first else float("nan")


def compare(fp32: Trace, fp16: Trace, tolerance: float = TOLERANCE,
            max_skipped: int = MAX_SKIPPED, grace: int = GRACE) -> dict[str, Any]:
    """The check's report (pure): the measurements, and under "failures" what is wrong with
    the fp16 run (an empty list: it passed)."""
    failures = []
    if fp16.amp_dtype != "float16":
        failures.append(f"autocast ran in {fp16.amp_dtype or 'fp32'}, not float16")
    if not fp16.scaler_enabled:
        failures.append("the gradient scaler was not enabled")
    bad = [i for i, v in enumerate(fp16.losses) if not math.isfinite(v)]
    if bad:
        failures.append(f"the fp16 loss is not finite at step(s) {bad[:5]}")
    late = [s for s in fp16.skipped if s >= grace]
    if len(late) > max_skipped:
        failures.append(f"the scaler skipped {len(late)} steps after the first {grace} "
                        f"(at most {max_skipped} allowed): {late[:10]}")
    pairs = list(zip(fp32.losses, fp16.losses, strict=True))
    if fp16.amp_dtype == "float16" and fp16.losses == fp32.losses:
        failures.append("the fp16 losses equal fp32's bit for bit: autocast computed nothing "
                        "in float16")
    diffs = [abs(b - a) / abs(a) for a, b in pairs if a]
    max_diff = max(diffs) if diffs and not bad else float("nan")
    last_diff = diffs[-1] if diffs and not bad else float("nan")
    fell32, fell16 = fall(fp32.losses), fall(fp16.losses)
    if not fell32 > 0:
        failures.append(f"the fp32 loss did not fall over {len(pairs)} steps ({fell32:+.3f}): "
                        "too few steps to compare")
    elif not bad and not fell16 >= fell32 / 2:
        failures.append(f"the fp16 loss fell by {fell16:.1%}, fp32's by {fell32:.1%} (it must "
                        "fall at least half as much)")
    if not bad and not last_diff <= tolerance:
        failures.append(f"the last losses differ by {last_diff:.2%} (fp32 {fp32.losses[-1]:.5f},"
                        f" fp16 {fp16.losses[-1]:.5f}), more than the tolerance {tolerance:.1%}")

    def rounded(x: float) -> float | None:
        return round(x, 6) if math.isfinite(x) else None

    return {
        "torch": torch.__version__, "autocast_dtype": fp16.amp_dtype,
        "scaler_enabled": fp16.scaler_enabled, "steps": len(pairs),
        "fp32_loss": [rounded(fp32.losses[0]), rounded(fp32.losses[-1])],
        "fp16_loss": [rounded(fp16.losses[0]), rounded(fp16.losses[-1])],
        "fell": {"fp32": rounded(fell32), "fp16": rounded(fell16)},
        "max_rel_diff": rounded(max_diff), "last_rel_diff": rounded(last_diff),
        "tolerance": tolerance, "skipped": fp16.skipped, "final_scale": fp16.scales[-1],
        "seconds": {"fp32": round(fp32.seconds, 1), "fp16": round(fp16.seconds, 1)},
        # the whole run in fp16 at this pace: what the chapters' asserts under fp16 would cost
        "total_steps": fp16.total,
        "fp16_minutes_for_all": round(fp16.seconds / max(1, len(pairs)) * fp16.total / 60, 1),
        "failures": failures}


def check(steps: int = 40, tolerance: float = TOLERANCE, max_skipped: int = MAX_SKIPPED,
          grace: int = GRACE, run: Callable[[Any, int], Trace] = trace,
          **overrides: Any) -> dict[str, Any]:
    """Train the quick preset (changed by `overrides`) for `steps` steps in fp32 and in fp16
    from the same seed with `run` (default `trace`), and compare them (`compare`). A torch
    whose GradScaler cannot run on a CPU gives a report with that failure and no runs."""
    from mae_tutorial.config import config_from_preset

    problem = cpu_scaler_problem()
    if problem:
        return {"torch": torch.__version__, "steps": steps, "failures": [problem]}
    base = config_from_preset("quick", **overrides)
    fp32 = run(dataclasses.replace(base, amp="off"), steps)
    fp16 = run(dataclasses.replace(base, amp="fp16"), steps)
    return compare(fp32, fp16, tolerance, max_skipped, grace)


def main(argv: list[str] | None = None) -> int:
    """The command line; prints the report as one JSON line, returns 1 if the check failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps of each run")
    parser.add_argument("--synthetic-size", type=int, default=None,
                        help="images of the training set (default: the quick preset's)")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE,
                        help="relative difference of the last losses allowed")
    parser.add_argument("--max-skipped", type=int, default=MAX_SKIPPED)
    parser.add_argument("--grace", type=int, default=GRACE)
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2")
    overrides = {} if args.synthetic_size is None else {"synthetic_size": args.synthetic_size}
    report = check(args.steps, args.tolerance, args.max_skipped, args.grace, **overrides)
    print(json.dumps(report), flush=True)
    for failure in report["failures"]:
        print(f"fp16 check failed: {failure}", file=sys.stderr)
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
