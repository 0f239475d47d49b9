"""The paper's ablations (Table 1, Fig. 5) at small scale, on this machine: every variant of
`mae_tutorial.lab.ablations.ABLATIONS` pre-trained as the book's shared model is, with one setting
changed (once: the models are cached with the book's, in book/runs/cache), and measured by
k-NN, linear probe and chapter 7's short fine-tuning, with its pre-training FLOPs per image;
then the fine-tuning of the baseline and of raw pixels again with a second seed.

    python benchmarks/ablations.py                  # the full sweep
    python benchmarks/ablations.py --only grid      # some rows (the others are kept)
    python benchmarks/ablations.py --seeds 0 1 2 --frozen-only --only baseline mask0.5

With `--seeds`, each (row, seed) is pre-trained with that run seed and its frozen measures
(and, without `--frozen-only`, its short fine-tuning) go to the file's "seeds" table,
written after each one and skipped on a restart: the spread the pages compare gaps with.

Writes mae_tutorial/results/ablations.json (shipped with the package) after every row,
atomically, with the machine, the date and torch's version; chapter 7 and the ablations
appendix read it and check its baseline row against the book's own model.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import torch

from mae_tutorial.data import evaluation_split
from mae_tutorial.finetune import SHORT_FINETUNE
from mae_tutorial.lab import ablations, book_model, finetune_once
from mae_tutorial.optim import autocast_dtype, cpu_has_native_bf16

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "mae_tutorial" / "results" / "ablations.json"
SEED_ROWS = ("baseline", "raw_pixels")  # fine-tuned with a second seed: the noise of one


def machine() -> str:
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (GPU)"
    return (f"{name}, {os.cpu_count()} cores, {torch.get_num_threads()} threads, native bf16: "
            f"{cpu_has_native_bf16()}, mixed precision: {autocast_dtype(device, 'auto')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(ablations.ABLATIONS))
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--seeds", nargs="+", type=int,
                        help="pre-training seeds: fill the file's per-seed table instead")
    parser.add_argument("--frozen-only", action="store_true",
                        help="with --seeds: k-NN and linear probe only, no fine-tuning")
    args = parser.parse_args()
    os.chdir(ROOT / "book")  # the book's cache: models shared with the chapters
    names = args.only or list(ablations.ABLATIONS)
    results = json.loads(args.output.read_text()) if args.output.exists() else {"rows": {}}
    results.pop("budget", None)
    measured = dict(machine=machine(), torch=torch.__version__,
                    date=datetime.date.today().isoformat())
    if args.seeds:  # the per-seed table has its own record of where it was measured
        results["seeds_measured"] = measured
    else:
        results.update(measured, dataset="synthetic (generated offline): pre-training "
                       "10,000 images; judged on 5,000 / 2,000 others")
    data = evaluation_split()
    print(f"{measured['machine']}, torch {measured['torch']}")
    if args.seeds:
        seeded(results, names, args.seeds, data, not args.frozen_only, args.output)
        return
    for name in names:
        start = time.perf_counter()
        row = ablations.run_ablation(name, data)
        row["seconds"] = round(time.perf_counter() - start)
        row["date"] = datetime.date.today().isoformat()
        results["rows"][name] = row
        write(results, args.output)
        print(f"{name:>20}: k-NN {row['knn']:5.1f}  probe {row['linear_probe']:5.1f}  "
              f"fine-tuned {row['finetune']:5.1f}  {row['flops_per_image'] / 1e6:6.1f} MFLOP/img"
              f"  ({row['seconds']} s)", flush=True)
    seeds = results.setdefault("finetune_seeds", {})
    for name in SEED_ROWS:
        if name in names:
            model, run = book_model(**ablations.ABLATIONS[name].overrides)
            seeds[name] = [finetune_once(run, *data, model, seed=seed,
                                         device=next(model.parameters()).device,
                                         **SHORT_FINETUNE)["accuracy"] for seed in (0, 1)]
            write(results, args.output)
            print(f"{name:>20}: fine-tuned {seeds[name][0]:.1f} (seed 0), "
                  f"{seeds[name][1]:.1f} (seed 1)", flush=True)


def seeded(results: dict, names: list[str], seeds: list[int], data: tuple, finetune: bool,
           output: Path) -> None:
    """Fill results["seeds"][row][seed] with each row pre-trained with each seed."""
    table = results.setdefault("seeds", {})
    for seed in seeds:
        for name in names:
            done = table.setdefault(name, {}).get(str(seed), {})
            if "knn" in done and (not finetune or "finetune" in done):
                continue
            start = time.perf_counter()
            row = ablations.run_ablation(name, data, finetune=finetune, seed=seed)
            table[name][str(seed)] = {k: row[k] for k in ("knn", "linear_probe", "finetune")
                                      if k in row}
            write(results, output)
            print(f"{name:>20} seed {seed}: {table[name][str(seed)]} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)


def write(results: dict, path: Path) -> None:
    """Write the results file atomically: a reader never sees half of it."""
    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
