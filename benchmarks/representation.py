"""What MAE learns, against a contrastive model trained in the same budget (the representation
chapter, the paper's Fig. 9 at small scale): for each pre-training seed, the book's MAE (the
`quick` preset), MoCo v3 (`mt.lab.contrastive_once`: the same data, steps, batch and schedule)
and the same ViT at random initialization, judged by

- `frozen`: k-NN and linear probe, cls token and mean of the patch tokens;
- `layers`: a linear probe on each encoder block's mean-pooled output
  (`evaluate.block_features`), also for MAE with a 4-block decoder (Table 1a's mechanism);
- `attention`: the mean attention distance of each block's heads (`evaluate.
  mean_attention_distance`, 512 test images);
- `partial`: fine-tuning of the last 1 or 2 blocks and of all of them, with the converged
  judge's recipe (30 epochs at base lr 1e-2, `finetune_judge.py`); Fig. 9's 0 blocks is the
  linear probe, which `frozen` measures.

    python benchmarks/representation.py                       # everything, seeds 0 1 2
    python benchmarks/representation.py --only frozen layers  # the quick parts first
    python benchmarks/representation.py --lr-sweep 1e-3 5e-3 2e-2   # MoCo v3's base lr

`--lr-sweep` pre-trains MoCo v3 with seed 0 at each base lr and records its frozen features, so
the lr the other parts use (`--contrastive-lr`) is chosen by measurement, as the quick preset's
own lr was for MAE. Every finished (part, encoder, seed) is written at once to
mae_tutorial/results/representation.json and skipped on a restart.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from ablations import ROOT, machine, write  # one home for the results files' format

from mae_tutorial.data import evaluation_split, model_inputs
from mae_tutorial.evaluate import (
    block_features,
    frozen_feature_report,
    linear_probe,
    mean_attention_distance,
    random_init,
)
from mae_tutorial.lab import contrastive_once, finetune_once, pretrain_once
from mae_tutorial.lab.ablations import ABLATIONS
from mae_tutorial.lab.cache import CONTRASTIVE_LR  # measured by --lr-sweep
from mae_tutorial.lab.results import (
    finetune_judge_runs,
    representation_key,
    representation_runs,
)
from mae_tutorial.viz import mean_range

RESULTS = ROOT / "mae_tutorial" / "results" / "representation.json"
PARTS = ("frozen", "layers", "attention", "partial")
JUDGE = {"epochs": 30, "base_lr": 1e-2}  # finetune_judge.py's converged recipe
# its runs of the full fine-tuning: read from finetune_judge.json, not fine-tuned again
JUDGED = {"MAE": "MAE", "random init": "from scratch"}


def encoders(seed: int, contrastive_lr: float, part: str) -> dict[str, tuple[Any, Path, bool]]:
    """name -> (model, its run folder for cached fine-tunings, pre-trained?) for one seed;
    for `layers`, also MAE with the 4-block decoder of the ablations (its cached model). The
    three main encoders start from the same weights (the seed's initialization)."""
    mae, mae_run = pretrain_once("quick", seed=seed)
    moco, moco_run = contrastive_once("quick", seed=seed, base_lr=contrastive_lr)
    found = {"MAE": (mae, mae_run, True), "MoCo v3": (moco, moco_run, True),
             "random init": (random_init(mae, seed), mae_run, False)}
    if part == "layers":
        deep, deep_run = pretrain_once("quick", seed=seed, **ABLATIONS["dec_depth4"].overrides)
        found["MAE, 4-block decoder"] = (deep, deep_run, True)
    return found


def measure(part: str, name: str, model: Any, run: Path, pretrained: bool, seed: int,
            data: tuple) -> dict[str, Any]:
    """One part's numbers for one encoder (`name`)."""
    train, test = data
    if part == "frozen":
        return {pool: frozen_feature_report(model, train, test, pool) for pool in ("cls", "mean")}
    if part == "layers":
        feats = zip(block_features(model, train), block_features(model, test), strict=True)
        return {"linear_probe": [linear_probe(a, train.labels, b, test.labels)
                                 for a, b in feats]}
    if part == "attention":
        device = next(model.parameters()).device
        imgs = model_inputs(test, 0, 512, model.config.img_size, device)
        return {"distance": mean_attention_distance(model, imgs).tolist()}
    device = next(model.parameters()).device
    tuned = {}
    judged = finetune_judge_runs(train.name).get(JUDGED.get(name, ""), {})
    for blocks in (1, 2, None):  # 0 blocks is Fig. 9's linear probe: the `frozen` part
        which = "all" if blocks is None else str(blocks)
        if blocks is None and seed in judged:  # the converged judge's own run, same recipe
            tuned[which] = {"accuracy": judged[seed][-1], "curve": judged[seed]}
            continue
        row = finetune_once(run, train, test, model, pretrained=pretrained, seed=seed,
                            device=device, tune_blocks=blocks, curve=True, **JUDGE)
        tuned[which] = {"accuracy": row["accuracy"], "curve": row["curve"]}
    return tuned


def table(results: dict[str, Any]) -> str:
    """The results as benchmarks/README.md shows them (markdown): mean (lowest-highest) over
    the pre-training seeds, test accuracy in %, attention distance in patches."""
    out = []
    frozen = representation_runs("frozen", results)
    out += ["| encoder, pooling | k-NN | linear probe |", "| --- | --- | --- |"]
    for name, runs in frozen.items():
        for pool in ("mean", "cls"):
            cells = [mean_range([r[pool][key] for r in runs.values()])
                     for key in ("knn", "linear_probe")]
            out.append(f"| {name}, {pool} | {' | '.join(cells)} |")
    parts = {key.split("/")[0] for key in results["runs"]}
    if "partial" in parts:
        partial = representation_runs("partial", results)
        out += ["", "| encoder | 0 blocks (linear probe, better pooling) | 1 block | 2 blocks "
                "| all |", "| --- | --- | --- | --- | --- |"]
        for name, runs in partial.items():
            probes = {pool: [frozen[name][s][pool]["linear_probe"] for s in runs]
                      for pool in ("cls", "mean")}
            cells = [mean_range(max(probes.values(), key=sum))]
            cells += [mean_range([r[k]["accuracy"] for r in runs.values()])
                      for k in ("1", "2", "all")]
            out.append(f"| {name} | {' | '.join(cells)} |")
    for part, key, what in (("layers", "linear_probe", "linear probe, block"),
                            ("attention", "distance", "mean attention distance, block")):
        if part not in parts:
            continue
        runs = representation_runs(part, results)
        depth = len(next(iter(next(iter(runs.values())).values()))[key])
        out += ["", f"| encoder | {' | '.join(f'{what} {b + 1}' for b in range(depth))} |",
                "| --- |" + " --- |" * depth]
        for name, by_seed in runs.items():
            per_block = [[statistics.mean(r[key][b]) if part == "attention" else r[key][b]
                          for r in by_seed.values()] for b in range(depth)]
            out.append(f"| {name} | {' | '.join(mean_range(v) for v in per_block)} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--contrastive-lr", type=float, default=CONTRASTIVE_LR)
    parser.add_argument("--lr-sweep", nargs="+", type=float,
                        help="pre-train MoCo v3 (seed 0) at these base lrs, judge its frozen "
                             "features, and stop")
    parser.add_argument("--print", action="store_true",
                        help="print the tables of an existing --output and stop")
    args = parser.parse_args()
    results = json.loads(args.output.read_text()) if args.output.exists() else {"runs": {}}
    if args.print:
        print(table(results))
        return
    results.setdefault("lr_sweep", {})
    results.update(machine=machine(), torch=torch.__version__,
                   date=datetime.date.today().isoformat())
    os.chdir(ROOT / "book")  # the book's model cache
    print(results["machine"], flush=True)
    data = evaluation_split()
    if args.lr_sweep:
        for lr in args.lr_sweep:
            if f"{lr:g}" in results["lr_sweep"]:
                continue
            start = time.perf_counter()
            moco, run = contrastive_once("quick", seed=0, base_lr=lr)
            row = measure("frozen", "MoCo v3", moco, run, True, 0, data)
            row["seconds"] = round(time.perf_counter() - start)
            row["last_loss"] = json.loads((run / "metrics.jsonl").read_text()
                                          .splitlines()[-1])["loss"]
            results["lr_sweep"][f"{lr:g}"] = row
            write(results, args.output)
            print(f"MoCo v3 at base lr {lr:g}: {row}", flush=True)
        return
    results["contrastive_lr"] = args.contrastive_lr
    for part in args.only:  # every seed's quick parts before any seed's long one
        for seed in args.seeds:
            for name, (model, run, pretrained) in encoders(seed, args.contrastive_lr,
                                                            part).items():
                key = representation_key(part, name, seed)
                if key in results["runs"]:
                    continue
                start = time.perf_counter()
                row = measure(part, name, model, run, pretrained, seed, data)
                row["seconds"] = round(time.perf_counter() - start)
                results["runs"][key] = row
                write(results, args.output)
                print(f"{key}: {row}", flush=True)


if __name__ == "__main__":
    main()
