"""benchmarks/gpu_check.py, the one script for a lent GPU, runs every check (tiny, on the CPU)."""

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_gpu_check_runs_every_check_on_the_cpu(tmp_path):
    figures = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--small",
                           "--skip-compile", "--json", str(figures)], capture_output=True,
                          text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if "  ok  " in line]
    for name in ("train amp=bf16", "train amp=fp16", "train amp=off", "pipeline=loader",
                 "resume == uninterrupted", "resumed with fp16", "torchrun", "evaluation",
                 "Hugging Face", "throughput table"):
        assert any(name in row for row in rows), name
    assert "10 passed, 0 failed" in done.stdout
    # the figures chapter 9 would read, from this run's own log
    read = json.loads(figures.read_text())
    assert read["device"] == "CPU" and read["torch"] == torch.__version__
    assert len(read["checks"]) == 10 and all(c["result"] == "ok" for c in read["checks"].values())
    speed = read["throughput"]
    assert [(r["model"], r["batch"], r["run"]) for r in speed] == [
        ("vit_mini_patch4", 64, "device pipeline, eager"), ("vit_mini_patch4", 64,
                                                            "pipeline=loader")]
    assert all(r["images_per_s"] > 0 and r["peak_mb"] is None  # no peak memory on a CPU
               and math.isclose(r["epoch_s"], 50_000 / r["images_per_s"], rel_tol=0.02,
                                abs_tol=0.05) for r in speed)
    assert read["quick_preset_s"] >= 0 and read["finetune_epoch_s"] > 0
    assert read["matmul_size"] == 512 and read["matmul_tflops"] > 0


@pytest.mark.parametrize(("capability", "bf16"), [((7, 5), False), ((8, 0), True), ((9, 0), True)])
def test_bf16_rows_only_on_gpus_with_native_bf16(tmp_path, monkeypatch, capability, bf16):
    """A T4 (7.5) emulates bf16 although torch.cuda.is_bf16_supported() says True: its rows
    run in fp16 only. Checked with a faked GPU: the throughput table is told what it may use."""
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    gpu_check = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", gpu_check)  # its dataclasses look it up
    spec.loader.exec_module(gpu_check)
    told = []
    monkeypatch.setattr(gpu_check.mt, "pick_device", lambda name: torch.device("cuda", 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "a faked GPU")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(gpu_check, "throughput_table",
                        lambda args, device, work, bf16: told.append(bf16) or "table")
    monkeypatch.setattr(gpu_check.tempfile, "mkdtemp", lambda prefix: str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["gpu_check.py", "--throughput-only"])
    assert gpu_check.main() == 0
    assert told == [bf16]
