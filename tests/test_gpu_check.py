"""benchmarks/gpu_check.py, the one script for a lent GPU, runs every check (tiny, on the CPU)."""

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_gpu_check_runs_every_check_on_the_cpu():
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--small",
                           "--skip-compile"], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if "  ok  " in line]
    for name in ("train amp=bf16", "train amp=fp16", "train amp=off", "pipeline=loader",
                 "resume == uninterrupted", "resumed with fp16", "torchrun", "evaluation",
                 "Hugging Face", "throughput table"):
        assert any(name in row for row in rows), name
    assert "10 passed, 0 failed" in done.stdout
