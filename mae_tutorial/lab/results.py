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


def finetune_judge_runs(dataset: str = "synthetic", pretrain_epochs: int = 6,
                        schedule: str = "30 epochs at 0.01",
                        field: str = "curve") -> dict[str, dict[int, Any]]:
    """The converged judge's runs of one setting (`finetune_judge.json`, written by
    benchmarks/finetune_judge.py): encoder ("MAE", "from scratch", "MAE, <ablation row>")
    -> {pre-training seed: the run's `field`}, "curve" (test accuracy after each epoch) or
    "accuracy" (after the last). Chapter 7 and the ablations appendix."""
    judge = read_json("finetune_judge.json")
    found: dict[str, dict[int, Any]] = {}
    for key, run in judge["runs"].items():
        data, budget, seed, encoder, recipe = key.split("/")
        if (data, budget, recipe) == (dataset, str(pretrain_epochs), schedule):
            found.setdefault(encoder, {})[int(seed)] = run[field]
    if not found:
        settings = sorted({"/".join(k.split("/")[i] for i in (0, 1, 4)) for k in judge["runs"]})
        raise KeyError(f"finetune_judge.json has no run of {dataset}/{pretrain_epochs}/"
                       f"{schedule}; it holds (data/pre-training epochs/schedule) {settings}: "
                       "run benchmarks/finetune_judge.py for this setting")
    return {encoder: dict(sorted(by_seed.items())) for encoder, by_seed in found.items()}
