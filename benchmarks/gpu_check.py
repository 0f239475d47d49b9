"""Every CUDA path of the package in one run, for a lent GPU: does it work, and how fast.

    python benchmarks/gpu_check.py                          # one GPU, offline, < 8 minutes
    python benchmarks/gpu_check.py --json gpu_check.json    # and its figures, for chapter 9
    python benchmarks/gpu_check.py --device cpu --small     # the same checks, tiny, on a CPU

Runs, on synthetic data: training steps in bf16 and in fp16 with the gradient scaler (`--amp`
forced both ways) and in fp32; `--compile` on and off; the on-device augmentation against the
DataLoader pipeline; a checkpoint -> resume against an uninterrupted run; a bf16 checkpoint
resumed in fp16; `torchrun --nproc_per_node=1` (NCCL on a GPU, gloo on a CPU); k-NN and
fine-tuning on the device; training speed of ViT-B/16 (small: the mini preset) against Hugging
Face's `ViTMAEForPreTraining` in the same process; peak memory and model FLOPs utilization
(achieved matmul FLOP/s over the device's own measured matmul rate, same dtype); and the
throughput table of chapter 9 (steady images/s, peak memory and the time of a 50,000-image
epoch for the quick and full presets' models at several batch sizes, bf16 and fp16, and the
wall-clock time of the whole `--preset quick` run). Prints one row per check and exits 1 if
any failed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

import mae_tutorial as mt
from mae_tutorial import train as tr

ROWS: list[tuple[str, str, str]] = []  # (check, result, detail)


def check(name: str):
    """Run a check, record its row; a failure is a row too (the script goes on)."""
    def wrap(fn):
        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a row
                traceback.print_exc()
                ROWS.append((name, "FAILED", f"{type(exc).__name__}: {str(exc)[:120]}"))
                return None
            seconds = time.perf_counter() - start
            ROWS.append((name, "ok", f"{result} ({seconds:.0f} s)"))
            return result
        return run
    return wrap


def quiet(fn, *args, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def config(args, out: Path, **kw) -> tr.TrainConfig:
    steps = kw.pop("max_steps", args.steps)
    return tr.TrainConfig(**{
        "model": args.preset, "synthetic_size": args.images, "batch_size": args.batch,
        "max_steps": steps, "checkpoint_every": steps, "log_every": steps, "progress": False,
        "num_workers": 2, "device": args.device, "output_dir": str(out), **kw})


def images_per_s(out: Path) -> float:
    return [r for r in mt.checkpoint.read_metrics(out) if "images_per_s" in r][-1]["images_per_s"]


def peak_memory_mb(device: torch.device) -> str:
    if device.type != "cuda":
        return "n/a on CPU"
    return f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f} MB peak"


class _Tee(io.TextIOBase):
    """Writes to every stream it is given (the terminal and the log the JSON is read from)."""

    def __init__(self, *streams: io.TextIOBase) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def main() -> int:
    """Run the checks; with --json, also write the figures of this run's log as JSON (read
    by benchmarks/gpu_log.py, which turns older logs into the same JSON)."""
    args = parse_args()
    if args.json is None:
        return run_checks(args)
    log = io.StringIO()
    with contextlib.redirect_stdout(_Tee(sys.stdout, log)):
        code = run_checks(args)
    from gpu_log import read_log  # beside this script

    args.json.write_text(json.dumps(read_log(log.getvalue()), indent=1) + "\n")
    print(f"figures written to {args.json}")
    return code


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--small", action="store_true", help="tiny sizes (a CPU test)")
    p.add_argument("--throughput-only", action="store_true",
                   help="only the throughput table of chapter 9")
    p.add_argument("--skip-compile", action="store_true",
                   help="skip --compile (it takes minutes to compile on a CPU)")
    p.add_argument("--json", type=Path, default=None,
                   help="also write the run's figures as JSON (what chapter 9 reads)")
    return p.parse_args()


@dataclasses.dataclass
class Machine:
    """What every check needs: the command line, the device, a scratch folder, bf16 or not."""

    args: argparse.Namespace
    device: torch.device
    work: Path
    bf16: bool  # bf16 runs everywhere but is emulated, slowly, on GPUs before Ampere (a T4)


def run_checks(args: argparse.Namespace) -> int:
    device = mt.pick_device(args.device)
    args.preset = "vit_mini_patch4" if args.small else "vit_tiny_patch4"
    args.batch, args.steps = (32, 4) if args.small else (256, 60)
    args.images = 512 if args.small else 20_000
    m = Machine(args, device, Path(tempfile.mkdtemp(prefix="gpu_check_")),
                device.type != "cuda" or mt.optim.gpu_has_native_bf16(device))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {device} ({name}), torch {torch.__version__}, preset {args.preset}, "
          f"batch {args.batch}, {args.steps} steps per run, dataset synthetic")
    if args.throughput_only:
        print(throughput_table(args, device, m.work, m.bf16))
        return 0
    for amp in ("bf16", "fp16", "off"):
        if amp == "bf16" and not m.bf16:
            ROWS.append(("train amp=bf16", "skipped",
                         "this GPU has no native bf16 (compute capability < 8.0)"))
            continue
        check(f"train amp={amp}")(train_row)(m, f"amp_{amp}", amp=amp)
    if not args.skip_compile:
        check("train --compile")(train_row)(m, "compiled", compile=True)
    check("train pipeline=loader (DataLoader)")(train_row)(m, "loader", pipeline="loader")
    check("checkpoint -> resume == uninterrupted")(resume_equal)(m)
    check("bf16 checkpoint resumed with fp16")(bf16_then_fp16)(m)
    check("torchrun --nproc_per_node=1")(torchrun)(m)
    check("evaluation: k-NN, fine-tuning")(evaluation)(m)
    check("speed against Hugging Face, and MFU")(speed_and_mfu)(
        "vit_mini_patch4" if args.small else "vit_base_patch16", device,
        8 if args.small else 64, 3 if args.small else 10)
    check("throughput table (chapter 9)")(throughput_table)(args, device, m.work, m.bf16)
    width = max(len(r[0]) for r in ROWS)
    print(f"\n{'check':<{width}}  result   detail")
    for name_, result, detail in ROWS:
        print(f"{name_:<{width}}  {result:<7}  {detail}")
    failed = [r for r in ROWS if r[1] == "FAILED"]
    print(f"\n{len(ROWS) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def train_row(m: Machine, tag: str, **kw) -> str:
    out = m.work / tag
    if m.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(m.device)
    summary = quiet(tr.train, config(m.args, out, **kw))
    assert summary["finished"] and summary["loss"] == summary["loss"], summary
    return (f"loss {summary['loss']:.3f}, {images_per_s(out):.0f} images/s, "
            f"{peak_memory_mb(m.device)}")


def resume_equal(m: Machine) -> str:
    args, whole, parts = m.args, m.work / "whole", m.work / "parts"
    steps = 2 * args.steps
    quiet(tr.train, config(args, whole, max_steps=steps, checkpoint_every=args.steps))
    quiet(tr.train, config(args, parts, max_steps=steps, checkpoint_every=args.steps,
                           stop_after=args.steps))
    quiet(tr.train, config(args, parts, max_steps=steps, checkpoint_every=args.steps),
          resume=True)
    a = mt.checkpoint.read_training_checkpoint(whole / mt.checkpoint.CHECKPOINT)["model"]
    b = mt.checkpoint.read_training_checkpoint(parts / mt.checkpoint.CHECKPOINT)["model"]
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    tolerance = 0.0 if m.device.type == "cpu" else 1e-3  # GPU kernels may reorder sums
    assert worst <= tolerance, f"max |difference| {worst:.2e} > {tolerance}"
    return f"max |weight difference| {worst:.1e} (tolerance {tolerance})"


def bf16_then_fp16(m: Machine) -> str:
    out, steps = m.work / "switch", 2 * m.args.steps
    quiet(tr.train, config(m.args, out, max_steps=steps, amp="bf16" if m.bf16 else "off",
                           stop_after=m.args.steps))
    summary = quiet(tr.train, config(m.args, out, max_steps=steps, amp="fp16"), resume=True)
    assert summary["finished"] and summary["loss"] == summary["loss"]
    return f"loss {summary['loss']:.3f} after the switch"


def torchrun(m: Machine) -> str:
    args, out = m.args, m.work / "torchrun"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node=1", "-m", "mae_tutorial.train", "--model", args.preset,
           "--synthetic-size", str(args.images), "--batch-size", str(args.batch),
           "--max-steps", str(args.steps), "--no-progress", "--device", args.device,
           "--output-dir", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-800:]
    assert "x 1 processes" in done.stdout, done.stdout[-400:]
    backend = "NCCL" if m.device.type == "cuda" else "gloo"
    return f"{backend} process group, DDP, {images_per_s(out):.0f} images/s"


def evaluation(m: Machine) -> str:
    source = m.work / "amp_off" / mt.checkpoint.CHECKPOINT
    model = mt.mae_from_checkpoint(source).to(m.device)
    data = mt.data.load_dataset("synthetic", synthetic_size=m.args.images)
    test = mt.data.load_dataset("synthetic", train=False).first(500)
    report = mt.evaluate.frozen_feature_report(model, data, test, probe_epochs=2)
    tuned = mt.finetune.finetune(data, test, model, epochs=1, batch_size=m.args.batch,
                                 device=m.device)
    return (f"k-NN {report['knn']:.1f}%, probe {report['linear_probe']:.1f}%, fine-tuned "
            f"{tuned['accuracy']:.1f}% after {tuned['steps']} steps")


def throughput_table(args, device: torch.device, work: Path, bf16: bool) -> str:
    """Steady-state training speed (the data pipeline, forward, backward and AdamW; the first
    logging interval, which holds the warm-up, is left out), peak memory, and the seconds
    of one 50,000-image epoch (CIFAR-10's size). Prints a markdown table."""
    rows = []
    models = [("vit_mini_patch4", 64)] if args.small else [
        ("vit_mini_patch4", 64), ("vit_mini_patch4", 256), ("vit_tiny_patch4", 256),
        ("vit_tiny_patch4", 1024)]
    amps = ["bf16", "fp16"] if bf16 else ["fp16"]
    if device.type != "cuda":
        amps = ["bf16" if mt.optim.cpu_has_native_bf16() else "off"]
    steps, every = (6, 2) if args.small else (90, 30)
    runs = [(preset, batch, amp, {}) for preset, batch in models for amp in amps]
    # the same step compiled, and fed by the DataLoader (steady state: compiling happens in
    # the first interval, which is left out)
    preset, batch = models[-2] if len(models) > 1 else models[0]
    runs += [(preset, batch, amps[0], {"pipeline": "loader"})]
    if not args.skip_compile:
        runs += [(preset, batch, amps[0], {"compile": True})]
    for preset, batch, amp, extra in runs:
        out = work / f"speed_{preset}_{batch}_{amp}_{'_'.join(extra)}"
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        quiet(tr.train, tr.TrainConfig(
            model=preset, synthetic_size=max(4 * batch, 2048), batch_size=batch,
            max_steps=steps, log_every=every, checkpoint_every=steps, progress=False,
            amp=amp, device=args.device, output_dir=str(out), **extra))
        rates = [r["images_per_s"] for r in mt.checkpoint.read_metrics(out) if "images_per_s" in r]
        rate = sum(rates[1:]) / len(rates[1:])
        how = ", ".join(f"{k}={v}" for k, v in extra.items()) or "device pipeline, eager"
        rows.append(f"| {preset} | {batch} | {amp} | {how} | {rate:,.0f} | "
                    f"{peak_memory_mb(device)} | {50_000 / rate:.1f} |")
    start = time.perf_counter()  # the whole quick preset, as `--preset quick` runs it
    quick = tr.config_from_preset("quick", progress=False, device=args.device,
                                  output_dir=str(work / "quick_preset"),
                                  **({"max_steps": 6} if args.small else {}))
    quiet(tr.train, quick)
    seconds = time.perf_counter() - start
    # fine-tuning speed (chapter 7's recipe), one epoch of CIFAR-10's size on the full preset's
    # model; the first epoch holds the warm-up, so time epochs 1 and 2 and take the difference
    images = 512 if args.small else 50_000
    data = mt.data.load_dataset("synthetic", synthetic_size=images)
    test = mt.data.load_dataset("synthetic", synthetic_size=256, seed=7)
    mae = mt.mae_from_preset(models[-1][0])
    ft = []
    for epochs in (1, 2):
        begin = time.perf_counter()
        quiet(mt.finetune.finetune, data, test, mae, epochs=epochs, batch_size=128,
              device=device)
        ft.append(time.perf_counter() - begin)
    per_epoch = (ft[1] - ft[0]) * 50_000 / images
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"\nthroughput on {name}, torch {torch.__version__} (synthetic data; "
          "steady state):\n| model | batch | amp | run | images/s | peak memory | s per 50k-image "
          "epoch |\n| --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows))
    print(f"the quick preset ({quick.epochs} epochs of {quick.synthetic_size} images, batch "
          f"{quick.batch_size}), start-up included: {seconds:.0f} s")
    print(f"fine-tuning {models[-1][0]} (batch 128, chapter 7's recipe): {per_epoch:.1f} s per "
          "50k-image epoch\n")
    return f"{len(rows)} rows; quick preset {seconds:.0f} s"


def speed_and_mfu(preset: str, device: torch.device, batch: int, steps: int) -> str:
    """Training steps/s of ours and of HF's ViTMAEForPreTraining (same weights, same noise),
    in the AMP dtype of the device, and our model FLOPs utilization."""
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    torch.manual_seed(0)
    ours = mt.mae_from_preset(preset, norm_pix_loss=True).to(device).train()
    cfg = ViTMAEConfig(**mt.hf.vitmae_config_kwargs(ours), mask_ratio=0.75)
    theirs = ViTMAEForPreTraining(cfg).to(device).train()
    theirs.load_state_dict(mt.to_hf_vitmae(ours.state_dict()), strict=True)
    dtype = mt.optim.autocast_dtype(device, "auto")
    size = ours.config.img_size
    imgs = torch.randn(batch, 3, size, size, device=device)
    noise = torch.rand(batch, ours.num_patches, device=device)

    def step_of(model, call):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            with torch.autocast(device.type, dtype=dtype or torch.float32,
                                enabled=dtype is not None):
                loss = call()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return step

    ours_step = step_of(ours, lambda: ours(imgs, 0.75, noise)[0])
    theirs_step = step_of(theirs, lambda: theirs(pixel_values=imgs, noise=noise).loss)
    with FlopCounterMode(display=False) as counter:
        ours_step()
    flops = counter.get_total_flops()

    def rate(step) -> float:  # steps per second, `steps` in a row after one warm-up step
        return 1 / mt.runtime.time_calls(step, device, 1, warmup=1, calls=steps)[0]

    rates = {"ours": [], "hf": []}
    for _ in range(2):  # interleaved
        rates["ours"].append(rate(ours_step))
        rates["hf"].append(rate(theirs_step))
    r_ours, r_hf = max(rates["ours"]), max(rates["hf"])
    n = 4096 if device.type == "cuda" else 512
    a = torch.randn(n, n, device=device, dtype=dtype or torch.float32)
    matmul = rate(lambda: a @ a) * 2 * n**3
    achieved = r_ours * flops
    return (f"{preset} batch {batch}: ours {r_ours * batch:.0f} img/s, HF {r_hf * batch:.0f} "
            f"img/s ({r_ours / r_hf:.2f}x); {achieved / 1e12:.2f} TFLOP/s = "
            f"{achieved / matmul:.0%} of a {n}^2 matmul ({matmul / 1e12:.1f} TFLOP/s, "
            f"{dtype or torch.float32})")


if __name__ == "__main__":
    sys.exit(main())
