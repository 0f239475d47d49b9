"""How close does a training step come to this machine's limit? Measured in one run:

  - the step's FLOPs (`torch.utils.flop_counter`; matrix products, convolutions, attention),
  - the machine's own matrix-multiply rate at exactly the step's shapes (every `mm`, `addmm`
    and `bmm` of one step is recorded, then each shape is timed alone, in fp32 and in bf16),
  - images/s of the package's real training step (`train.train_step`: on-device augmentation,
    masking, forward, backward, AdamW), in fp32 and, where the CPU has native bf16, under
    bf16 autocast; the two interleaved, median of `--rounds`.

It prints the step's FLOP rate as a fraction of the fp32 matmul rate (and of the bf16 one).

    python benchmarks/cpu_limit.py [--model vit_mini_patch4] [--batch-size 128] [--rounds 5]
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
        torch.bmm(a, b)
        start = time.perf_counter()
        for _ in range(reps):
            torch.bmm(a, b)
        seconds += count * (time.perf_counter() - start) / reps
        flops += count * 2 * bt * m * k * n
    return flops / seconds


def make_run(model: str, batch: int, amp: str, steps: int) -> tuple[tr.Run, object]:
    cfg = mt.config.config_from_preset(
        "quick", model=model, batch_size=batch, amp=amp, max_steps=steps, progress=False,
        output_dir=tempfile.mkdtemp(prefix="cpu_limit_"))
    with contextlib.redirect_stdout(io.StringIO()):
        run = tr.setup(cfg)
    return run, step_batches(cfg, run.data, run.device, 0, steps, run.rank, run.world)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="vit_mini_patch4", choices=sorted(mt.MODEL_PRESETS))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    native = cpu_has_native_bf16()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {native}, "
          f"model {args.model}, batch {args.batch_size}, dataset synthetic")

    modes = ["off"] + (["bf16"] if native else [])
    total = 2 + args.rounds * args.steps + 2
    runs = {amp: make_run(args.model, args.batch_size, amp, total) for amp in modes}

    # one step's FLOPs and matrix-product shapes (fp32), after a warm-up step
    run, batches = runs["off"]
    tr.train_step(run, 0, batches)
    shapes = MatmulShapes()
    with FlopCounterMode(display=False) as counter, shapes:
        tr.train_step(run, 1, batches)
    flops = counter.get_total_flops()
    if native:  # its two warm-up steps
        for i in range(2):
            tr.train_step(runs["bf16"][0], i, runs["bf16"][1])
    peak = {"off": matmul_rate(shapes.shapes, torch.float32)}
    if native:
        peak["bf16"] = matmul_rate(shapes.shapes, torch.bfloat16)
    print(f"one step: {flops / 1e9:.2f} GFLOP ({flops / args.batch_size / 1e9:.3f} per image), "
          f"{sum(shapes.shapes.values())} matrix products of {len(shapes.shapes)} shapes")
    for amp, rate in peak.items():
        print(f"this machine's matmul rate at those shapes, {'fp32' if amp == 'off' else amp}: "
              f"{rate / 1e9:6.1f} GFLOP/s")

    speed: dict[str, list[float]] = {amp: [] for amp in modes}
    step = {amp: 2 for amp in modes}
    for _ in range(args.rounds):  # interleaved, so that both see the same machine
        for amp in modes:
            run, batches = runs[amp]
            start = time.perf_counter()
            for _ in range(args.steps):
                loss, _ = tr.train_step(run, step[amp], batches)
                step[amp] += 1
            loss.item()
            speed[amp].append(args.steps * args.batch_size / (time.perf_counter() - start))
    for amp in modes:
        ips = statistics.median(speed[amp])
        achieved = ips / args.batch_size * flops
        name = "fp32" if amp == "off" else "bf16 autocast"
        print(f"training step, {name:<13}: {ips:6.0f} images/s (rounds: "
              f"{', '.join(f'{s:.0f}' for s in speed[amp])}), {achieved / 1e9:5.1f} GFLOP/s = "
              f"{achieved / peak['off']:.0%} of the fp32 matmul rate"
              + (f", {achieved / peak[amp]:.0%} of the bf16 one" if amp != "off" else ""))
    if native:
        ratio = statistics.median(speed["bf16"]) / statistics.median(speed["off"])
        print(f"bf16 autocast / fp32: {ratio:.2f}x images/s")


if __name__ == "__main__":
    main()
