"""How close does a training step come to this machine's limit? Measured in one run:

  - the step's FLOPs (`torch.utils.flop_counter`; matrix products, convolutions, attention),
  - the machine's own matrix-multiply rate at exactly the step's shapes (every `mm`, `addmm`
    and `bmm` of one step is recorded, then each shape is timed alone, in fp32 and in bf16),
  - images/s of the package's real training step (`train.train_step`: on-device augmentation,
    masking, forward, backward, AdamW), in fp32 and, where the CPU has native bf16, under
    bf16 autocast; the two interleaved, median of `--rounds`.

It prints the step's FLOP rate as a fraction of the fp32 matmul rate (and of the bf16 one).

    python benchmarks/cpu_limit.py [--model vit_mini_patch4] [--batch-size 64] [--rounds 5]
    python benchmarks/cpu_limit.py --before   # also without what the package does for speed
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import statistics
import tempfile
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

import mae_tutorial as mt
from mae_tutorial import train as tr
from mae_tutorial.batches import step_batches
from mae_tutorial.optim import cpu_has_native_bf16
from mae_tutorial.runtime import time_calls

aten = torch.ops.aten


class MatmulShapes(TorchDispatchMode):
    """Counts the (batch, m, k, n) of every matrix product run under it."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in (aten.mm.default, aten.addmm.default):
            a, b = args[-2], args[-1]
            self.shapes[(1, a.shape[0], a.shape[1], b.shape[1])] += 1
        elif func is aten.bmm.default:
            a, b = args
            self.shapes[(a.shape[0], a.shape[1], a.shape[2], b.shape[2])] += 1
        return func(*args, **(kwargs or {}))


def matmul_rate(shapes: collections.Counter, dtype: torch.dtype, reps: int = 20) -> float:
    """FLOP/s of this machine over the step's own matrix products, each shape timed alone."""
    flops = seconds = 0.0
    for (bt, m, k, n), count in shapes.items():
        a, b = torch.randn(bt, m, k, dtype=dtype), torch.randn(bt, k, n, dtype=dtype)
        seconds += count * time_calls(lambda a=a, b=b: torch.bmm(a, b), torch.device("cpu"), 1,
                                      warmup=1, calls=reps)[0]
        flops += count * 2 * bt * m * k * n
    return flops / seconds


# mode: (amp, what is undone to show what it was worth)
MODES = {
    "fp32": ("off", None),
    "bf16 autocast": ("bf16", None),
    "fp32, per-parameter AdamW": ("off", "unfused-adamw"),
    "bf16, fused attention kernel": ("bf16", "sdpa-in-bf16"),
    "fp32, torch.compile": ("off", "compile"),
}


def make_run(model: str, batch: int, amp: str, steps: int, undo: str | None):
    cfg = mt.config.config_from_preset(
        "quick", model=model, batch_size=batch, amp=amp, max_steps=steps, progress=False,
        output_dir=tempfile.mkdtemp(prefix="cpu_limit_"), compile=undo == "compile")
    with contextlib.redirect_stdout(io.StringIO()):
        run = tr.setup(cfg)
    if undo == "unfused-adamw":  # PyTorch's default on a CPU: one parameter at a time
        run.optimizer = torch.optim.AdamW(mt.optim.param_groups(run.model, cfg.weight_decay),
                                          lr=0.0, betas=(cfg.beta1, cfg.beta2))
    if undo == "sdpa-in-bf16":  # the fused kernel, which the trainer avoids on CPU bf16
        for module in run.model.modules():
            if isinstance(module, mt.vit.Attention):
                module.fused = True
    return run, step_batches(cfg, run.data, run.device, stop=steps, rank=run.rank,
                             world=run.world)


def step_cost(run, batches, native: bool, batch: int) -> tuple[float, dict[str, float]]:
    """One step's FLOPs (fp32, after a warm-up step) and this machine's matmul rate at the
    step's own shapes, in fp32 and, with native bf16, in bf16."""
    tr.train_step(run, 0, batches)
    shapes = MatmulShapes()
    with FlopCounterMode(display=False) as counter, shapes:
        tr.train_step(run, 1, batches)
    flops = counter.get_total_flops()
    peak = {"off": matmul_rate(shapes.shapes, torch.float32)}
    if native:
        peak["bf16"] = matmul_rate(shapes.shapes, torch.bfloat16)
    print(f"one step: {flops / 1e9:.2f} GFLOP ({flops / batch / 1e9:.3f} per image), "
          f"{sum(shapes.shapes.values())} matrix products of {len(shapes.shapes)} shapes")
    for amp, rate in peak.items():
        print(f"this machine's matmul rate at those shapes, {'fp32' if amp == 'off' else amp}: "
              f"{rate / 1e9:6.1f} GFLOP/s")
    return flops, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="vit_mini_patch4", choices=sorted(mt.MODEL_PRESETS))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", action="store_true",
                        help="also time the step without fused AdamW, and bf16 with the fused "
                             "attention kernel (what the package does differently)")
    parser.add_argument("--compile", action="store_true",
                        help="also time fp32 under torch.compile (its first step compiles: "
                             "about a minute here)")
    args = parser.parse_args()
    native = cpu_has_native_bf16()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {native}, "
          f"model {args.model}, batch {args.batch_size}, dataset synthetic")
    wanted = {None} | ({"unfused-adamw", "sdpa-in-bf16"} if args.before else set()) | (
        {"compile"} if args.compile else set())
    modes = [m for m in MODES if (native or MODES[m][0] == "off") and MODES[m][1] in wanted]
    total = 2 + args.rounds * args.steps + 2
    runs = {m: make_run(args.model, args.batch_size, MODES[m][0], total, MODES[m][1])
            for m in modes}

    flops, peak = step_cost(*runs["fp32"], native, args.batch_size)
    for m in modes[1:]:  # their two warm-up steps (bf16 kernels are built on first use)
        start = time.perf_counter()
        for i in range(2):
            tr.train_step(runs[m][0], i, runs[m][1])
        if MODES[m][1] == "compile":
            print(f"torch.compile: the first two steps took {time.perf_counter() - start:.0f} s")

    speed: dict[str, list[float]] = {m: [] for m in modes}
    step = dict.fromkeys(modes, 2)
    for _ in range(args.rounds):  # interleaved, so that all see the same machine
        for m in modes:
            run, batches = runs[m]
            def one_step(m=m, run=run, batches=batches):
                tr.train_step(run, step[m], batches)
                step[m] += 1

            seconds = time_calls(one_step, run.device, 1, warmup=0, calls=args.steps)[0]
            speed[m].append(args.batch_size / seconds)
    fp32 = statistics.median(speed["fp32"])
    for m in modes:
        ips = statistics.median(speed[m])
        achieved = ips / args.batch_size * flops
        amp = MODES[m][0]
        print(f"{m:<29}: {ips:5.0f} images/s ({ips / fp32:.2f}x fp32; rounds "
              f"{', '.join(f'{s:.0f}' for s in speed[m])}), {achieved / 1e9:5.1f} GFLOP/s = "
              f"{achieved / peak['off']:.0%} of the fp32 matmul rate"
              + (f", {achieved / peak[amp]:.0%} of the bf16 one" if amp != "off" else ""))

if __name__ == "__main__":
    main()
