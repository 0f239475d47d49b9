"""The measurements the project ships with the package (`mae_tutorial/results/`): benchmark logs
and results files, read by chapters offline and on Colab alike. The benchmarks write them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[1] / "results"


def read_result(name: str) -> str:
    """The text of a shipped measurement, e.g. "gpu_check_h200.log". Chapter 9 and the
    appendices."""
    path = RESULTS / name
    if not path.is_file():
        known = sorted(p.name for p in RESULTS.glob("*") if p.is_file())
        raise FileNotFoundError(f"no measurement {name!r} in {RESULTS}; the package ships "
                                f"{known}")
    return path.read_text()


def read_json(name: str) -> Any:
    """A shipped results file, parsed, e.g. "ablations.json". Chapters 5, 7 and the appendices."""
    return json.loads(read_result(name))
