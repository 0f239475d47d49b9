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


def judge_key(dataset: str, pretrain_epochs: int, seed: int, encoder: str,
              schedule: str) -> str:
    """The key of one run in `finetune_judge.json`: "data/pre-training epochs/seed/encoder/
    schedule", e.g. "synthetic/6/0/MAE/30 epochs at 0.01". benchmarks/finetune_judge.py
    writes it; chapter 7 and the ablations appendix read it through `finetune_judge_runs`."""
    return f"{dataset}/{pretrain_epochs}/{seed}/{encoder}/{schedule}"


def split_judge_key(key: str) -> tuple[str, int, int, str, str]:
    """`judge_key`'s fields back from a key (read for chapter 7 and the ablations appendix)."""
    dataset, budget, seed, encoder, schedule = key.split("/")
    return dataset, int(budget), int(seed), encoder, schedule


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
        data, budget, seed, encoder, recipe = split_judge_key(key)
        if (data, budget, recipe) == (dataset, pretrain_epochs, schedule):
            found.setdefault(encoder, {})[seed] = run[field]
    if not found:
        settings = sorted({f"{d}/{b}/{r}" for d, b, _, _, r in map(split_judge_key,
                                                                   judge["runs"])})
        raise KeyError(f"finetune_judge.json has no run of {dataset}/{pretrain_epochs}/"
                       f"{schedule}; it holds (data/pre-training epochs/schedule) {settings}: "
                       "run benchmarks/finetune_judge.py for this setting")
    return {encoder: dict(sorted(by_seed.items())) for encoder, by_seed in found.items()}


def choice_key(dataset: str, seed: int, measure: str, pretrain_epochs: int = 6) -> str:
    """The key of one run in `dataset_choice.json`: "data/seed/measure" ("frozen" or
    "finetune"), with "/<n> epochs" after it for a pre-training other than the chapters' 6.
    benchmarks/dataset_choice.py writes it; chapter 7 reads it through
    `dataset_choice_runs`."""
    budget = "" if pretrain_epochs == 6 else f"/{pretrain_epochs} epochs"
    return f"{dataset}/{seed}/{measure}{budget}"


def frozen_key(dataset: str, seed: int, pretrain_epochs: int = 6) -> str:
    """The key of one run in `frozen_features.json`: "data/pre-training epochs/seed".
    benchmarks/frozen_features.py writes it; chapter 7 reads it through
    `frozen_features_runs`."""
    return f"{dataset}/{pretrain_epochs}/{seed}"


def frozen_features_runs(dataset: str = "synthetic", pretrain_epochs: int = 6
                         ) -> dict[int, dict]:
    """The frozen-feature benchmark's runs (`frozen_features.json`, written by
    benchmarks/frozen_features.py): {pre-training seed: its table}, each table mapping a
    pooling ("cls", "mean") to "pre-trained", "random init" and "gain", each with "knn" and
    "linear_probe" accuracies. Chapter 7."""
    runs = read_json("frozen_features.json")["runs"]
    found = {}
    for key in runs:
        name, budget, seed = key.split("/")
        if name == dataset and int(budget) == pretrain_epochs:
            found[int(seed)] = runs[key]
    if not found:
        raise KeyError(f"frozen_features.json has no run of {dataset} after {pretrain_epochs} "
                       "pre-training epochs: run benchmarks/frozen_features.py --seeds 0 1 2")
    return dict(sorted(found.items()))


def split_choice_key(key: str) -> tuple[str, int, str, int]:
    """`choice_key`'s fields back from a key: (dataset, seed, measure, pre-training epochs).
    Read for chapter 7 and benchmarks/dataset_choice.py's table."""
    dataset, seed, measure, *budget = key.split("/")
    epochs = int(budget[0].removesuffix(" epochs")) if budget else 6
    return dataset, int(seed), measure, epochs


def dataset_choice_runs(dataset: str = "synthetic", pretrain_epochs: int = 6,
                        measure: str = "frozen") -> dict[int, dict]:
    """The dataset benchmark's runs of one setting (`dataset_choice.json`, written by
    benchmarks/dataset_choice.py): {pre-training seed: its row}; a "frozen" row maps each
    encoder ("MAE", "raw pixels", "random-init ViT", "random CNN") to its "knn" and
    "linear_probe" accuracies. Chapter 7."""
    runs = read_json("dataset_choice.json")["runs"]
    seeds = sorted({split_choice_key(key)[1] for key in runs})
    found = {seed: runs[key] for seed in seeds
             if (key := choice_key(dataset, seed, measure, pretrain_epochs)) in runs}
    if not found:
        raise KeyError(f"dataset_choice.json has no {measure} run of {dataset} after "
                       f"{pretrain_epochs} pre-training epochs: run "
                       "benchmarks/dataset_choice.py for this setting")
    return found


def representation_key(part: str, encoder: str, seed: int) -> str:
    """The key of one run in `representation.json`: "part/encoder/pre-training seed", e.g.
    "frozen/MoCo v3/1". benchmarks/representation.py writes it; the representation chapter
    reads it through `representation_runs`."""
    return f"{part}/{encoder}/{seed}"


def representation_runs(part: str, results: dict[str, Any] | None = None
                        ) -> dict[str, dict[int, dict]]:
    """One part of the representation benchmark (`representation.json`, written by
    benchmarks/representation.py, or its `results` before they are shipped): {encoder:
    {pre-training seed: its row}}, encoders in the order the benchmark ran them. Parts:
    "frozen" (pooling -> "knn", "linear_probe"), "layers" ("linear_probe": one per block),
    "attention" ("distance": per block, per head), "partial" (blocks tuned "1", "2", "all" ->
    "accuracy", "curve"). The representation chapter."""
    found: dict[str, dict[int, dict]] = {}
    results = read_json("representation.json") if results is None else results
    for key, row in results["runs"].items():
        name, encoder, seed = key.split("/")
        if name == part:
            found.setdefault(encoder, {})[int(seed)] = row
    if not found:
        raise KeyError(f"representation.json has no {part!r} runs: run "
                       f"python benchmarks/representation.py --only {part}")
    return {encoder: dict(sorted(by_seed.items())) for encoder, by_seed in found.items()}
