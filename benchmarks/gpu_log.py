"""The figures of a `gpu_check.py` log, as JSON: what chapter 9 reads (it never parses a log).

    python benchmarks/gpu_log.py mae_tutorial/results/gpu_check_h200.log \
        --json mae_tutorial/results/gpu_check_h200.json

`gpu_check.py --json PATH` does the same for its own output at the end of a run. Reads both
formats the script has printed: the throughput table with and without its `run` column (the
first H200 log has none: every row is the device pipeline, eager).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

EAGER = "device pipeline, eager"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _number(text: str) -> float | None:
    """The first number in `text`: '4,216' -> 4216.0, '886 MB peak' -> 886.0, 'n/a' -> None."""
    found = re.search(r"\d[\d,]*\.?\d*", text)
    return float(found.group().replace(",", "")) if found else None


def throughput_rows(lines: list[str]) -> list[dict[str, Any]]:
    """The rows of the first markdown table in `lines` (gpu_check's throughput table)."""
    start = next(i for i, line in enumerate(lines) if line.startswith("| model |"))
    header = _cells(lines[start])
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cell = dict(zip(header, _cells(line), strict=True))
        rows.append({"model": cell["model"], "batch": int(cell["batch"]), "amp": cell["amp"],
                     "run": cell.get("run", EAGER),
                     "images_per_s": _number(cell["images/s"]),
                     "peak_mb": _number(cell["peak memory"]),
                     "epoch_s": _number(cell["s per 50k-image epoch"])})
    return rows


def checks(lines: list[str]) -> dict[str, dict[str, str]]:
    """The summary's rows: check name -> {"result": "ok" or "FAILED", "detail": ...}."""
    found = {}
    for line in lines:
        match = re.match(r"(\S.*?)\s{2,}(ok|FAILED)\s{2,}(.*)$", line)
        if match:
            found[match[1]] = {"result": match[2], "detail": match[3]}
    return found


def read_log(text: str) -> dict[str, Any]:
    """Everything chapter 9 uses from a gpu_check log: the device and torch, the throughput
    rows, the quick preset's wall-clock seconds, the fine-tuning epoch (if measured), the
    checks, and the bf16 matmul rate of the MFU check (if it ran)."""
    lines = text.splitlines()
    device = re.search(r"throughput on (.+?), torch (\S+)", text)
    quick = re.search(r"the quick preset .*start-up included: ([\d.]+) s", text)
    finetune = re.search(r"fine-tuning \S+ \(batch 128.*?: ([\d.]+) s per", text)
    found = checks(lines)
    mfu = found.get("speed against Hugging Face, and MFU", {}).get("detail", "")
    matmul = re.search(r"of a (\d+)\^2 matmul \(([\d.]+) TFLOP/s", mfu)
    return {"device": device[1], "torch": device[2], "throughput": throughput_rows(lines),
            "quick_preset_s": float(quick[1]),
            "finetune_epoch_s": float(finetune[1]) if finetune else None,
            "checks": found,
            "matmul_tflops": float(matmul[2]) if matmul else None,
            "matmul_size": int(matmul[1]) if matmul else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("--json", type=Path, required=True, help="where to write the figures")
    args = parser.parse_args()
    args.json.write_text(json.dumps(read_log(args.log.read_text()), indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
