"""The T4's precision path for the whole quick pre-training, with the chapters' asserts checked on
its model, on a CPU.

    python benchmarks/fp16_quick.py --cache book/runs/cache \
        --output mae_tutorial/results/fp16_quick.json
    python benchmarks/fp16_quick.py ... --only representation   # one chapter again, merged

A Colab T4 has no bf16, so the book's shared model (the `quick` preset, seed 0) trains there in
fp16 autocast with a gradient scaler. `tools/colab/fp16_check.py` compares the first 40 steps of
that path with fp32 on every CI run; this script runs it to the end once (about 20-25 minutes on
a 2-core CPU, where float16 is emulated), and then the chapters that read the shared model, with
that model in its place:

1. the quick pre-training three times from the same seed: fp16 with the scaler (the T4's path),
   fp32 (Colab's CPU runtime) and the machine's default (bf16 on a CPU that has it: what the
   book's pages show), each with `lab.pretrain_once` (kept in `--cache`, so a second run goes
   straight to the chapters); their loss curves side by side, and the steps the scaler
   skipped, read from the checkpoint's scale;
2. a model cache in which every model of `--cache` is linked, except the shared model, which is
   the fp16 one (a copy, stored under the shared model's key: the chapters find it as theirs);
3. each chapter of `CHAPTERS` executed with that cache (`gpu_book.run_chapter`): it passes if
   every assert holds; its key numbers are printed beside the CPU run the package ships.

Only the shared model changes precision: the chapters' own short trainings and the other cached
models run in the machine's default, as on the page. Exits 1 if a chapter stopped.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_book  # noqa: E402

from mae_tutorial.checkpoint import read_checkpoint, read_metrics  # noqa: E402
from mae_tutorial.config import config_from_preset  # noqa: E402
from mae_tutorial.lab.cache import pretrain_once, run_key  # noqa: E402
from mae_tutorial.optim import autocast_dtype  # noqa: E402
from mae_tutorial.runtime import pick_device  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "mae_tutorial" / "results" / "fp16_quick.json"
# The chapters that read the shared model (`lab.book_model()`); the others cannot change.
CHAPTERS = ["intro", "05_reconstruction_loss", "06_training", "07_evaluation",
            "representation", "appendix_errata", "appendix_ablations"]
PRECISIONS = {"fp16": "fp16 autocast + gradient scaler (a T4)", "off": "fp32 (Colab's CPU)",
              "auto": "this machine's default (the page)"}


def shared_key(preset: str = "quick") -> str:
    """The cache entry the chapters load as their shared model (`lab.book_model()`)."""
    return f"{preset}-{run_key(config_from_preset(preset))}"


def training_seconds(rows: list[dict], batch_size: int) -> float | None:
    """The time a run spent in its steps, from its metrics (each logged line's images/s over
    the steps since the line before): the same whether the run was trained now or loaded."""
    seconds, last = 0.0, 0
    for r in rows:
        if not r.get("images_per_s"):
            return None
        seconds += (r["step"] - last) * batch_size / r["images_per_s"]
        last = r["step"]
    return seconds


def skipped_steps(scaler: dict | None, steps: int) -> int | None:
    """How many optimizer steps a gradient scaler skipped, from its saved state: it halves its
    scale at each skip and doubles it only after `growth_interval` steps in a row without one,
    so while `steps` < that interval, skips = log2(initial scale / final scale). None without a
    scaler (fp32, bf16) or where growth may have happened."""
    if not scaler or not scaler.get("scale"):
        return None
    if steps >= scaler.get("growth_interval", 2000):
        return None
    init = 2.0 ** 16  # torch.amp.GradScaler's default initial scale
    return round(math.log(init / scaler["scale"]) / math.log(1 / scaler["backoff_factor"]))


def chapter_cache(source: Path | None, fp16_run: Path, into: Path, key: str) -> Path:
    """A model cache in `into` holding every entry of `source` (linked, not copied) but the
    shared model `key`, which is a copy of `fp16_run` (the chapters write fine-tunings into it)."""
    into.mkdir(parents=True, exist_ok=True)
    if source is not None and source.exists():
        for entry in source.iterdir():
            if entry.name not in (key, f"{key}.lock", f"{key}.partial"):
                (into / entry.name).symlink_to(entry.resolve())
    shutil.copytree(fp16_run, into / key, ignore=shutil.ignore_patterns("finetune-*"))
    return into


def train(amp: str, cache: Path) -> dict[str, Any]:
    """The quick pre-training with `amp`, into `cache` (loaded if it is already there)."""
    cfg = config_from_preset("quick", amp=amp)
    dtype = autocast_dtype(pick_device(cfg.device), cfg.amp)
    cached = (cache / f"quick-{run_key(cfg)}" / "checkpoint.pth").exists()
    _, run = pretrain_once("quick", cache=cache, amp=amp)
    state = read_checkpoint(run / "checkpoint.pth")
    rows = read_metrics(run)
    curve = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    seconds = training_seconds(rows, cfg.batch_size)
    return {"amp": amp, "what": PRECISIONS[amp], "cached": cached,
            "autocast": None if dtype is None else str(dtype).removeprefix("torch."),
            "seconds": None if seconds is None else round(seconds), "run": str(run),
            "steps": curve[-1][0],
            "skipped_steps": skipped_steps(state.get("scaler"), curve[-1][0]),
            "final_loss": round(sum(v for _, v in curve[-5:]) / len(curve[-5:]), 4),
            "curve": [[s, round(v, 5)] for s, v in curve]}


def curve_gap(a: list[list[float]], b: list[list[float]]) -> float:
    """The largest relative difference of two loss curves at the steps both logged."""
    other = dict((s, v) for s, v in b)
    return max(abs(other[s] - v) / abs(v) for s, v in a if s in other and v)


def table(log: dict[str, Any]) -> str:
    """The log as benchmarks/README.md shows it: the three trainings, then each chapter's
    verdict and key numbers beside the page's (markdown)."""
    lines = ["| precision | autocast | seconds of steps | skipped steps | final loss | "
             "largest gap to fp32 |", "| --- | --- | --- | --- | --- | --- |"]
    for r in log["runs"].values():
        gap = r.get("largest gap to fp32")
        lines.append(f"| {r['what']} | {r['autocast'] or 'none (fp32)'} | {r['seconds']} | "
                     f"{'-' if r['skipped_steps'] is None else r['skipped_steps']} | "
                     f"{r['final_loss']} | {'-' if gap is None else f'{gap:.1%}'} |")
    lines += ["", "| chapter, with the fp16 model | asserts | key numbers: fp16 model (page) |",
              "| --- | --- | --- |"]
    for r in log["chapters"]:
        numbers = ", ".join(f"{k} {v:.4g} ({r['page'].get(k, float('nan')):.4g})"
                            for k, v in r.get("numbers", {}).items() if v is not None)
        verdict = f"stopped: {r['error']}" if "error" in r else "all held"
        lines.append(f"| {r['chapter']} | {verdict} | {numbers or '-'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=None,
                        help="the book's model cache: its models serve the chapters (else "
                             "they train again), its default run serves as the page's, and "
                             "the fp16 and fp32 runs are kept in it")
    parser.add_argument("--output", type=Path, default=None, help="the JSON log to write")
    parser.add_argument("--only", nargs="+", default=CHAPTERS, choices=CHAPTERS)
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    parser.add_argument("--print", action="store_true",
                        help="print the table of an existing --output and stop")
    args = parser.parse_args(argv)
    if args.print:
        print(table(json.loads((args.output or RESULTS).read_text())))
        return 0
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the CPU's emulation of the T4's path
    work = Path(tempfile.mkdtemp(prefix="fp16-quick-"))
    source = args.cache.resolve() if args.cache else None
    print(f"{gpu_book.machine('cpu')}; the shared model's key {shared_key()}", flush=True)
    try:
        runs = {}
        for amp in ("auto", "off", "fp16"):  # the quick ones first
            runs[amp] = train(amp, source or work / "train")  # kept in --cache: a rerun
            # of the chapters does not train again (amp is a setting: its own cache entry)
            r = runs[amp]
            took = f"{r['seconds']} s of steps" + (" (cached)" if r["cached"] else "")
            print(f"amp={amp:<5} ({r['what']}, autocast {r['autocast']}): "
                  f"{took}, final loss {r['final_loss']}, "
                  f"skipped steps {r['skipped_steps']}", flush=True)
        for amp in ("fp16", "auto"):
            runs[amp]["largest gap to fp32"] = round(
                curve_gap(runs["off"]["curve"], runs[amp]["curve"]), 4)
        cache = chapter_cache(source, Path(runs["fp16"]["run"]), work / "chapters",
                              shared_key())
        os.environ["MAE_RUNS_CACHE"] = str(cache)
        print(f"the chapters' cache {cache}: the shared model is the fp16 one", flush=True)
        reference = {r["chapter"]: r.get("numbers", {})
                     for r in json.loads(gpu_book.REFERENCE.read_text())["chapters"]
                     if r["pass"] == "warm"}
        records = []
        for name in args.only:
            r = gpu_book.run_chapter(name, work / name, args.timeout)
            r["page"] = reference.get(name, {})
            records.append(r)
            print(f"{name:<26} {r['seconds']:6.0f} s  "
                  f"{'STOPPED: ' + r['error'] if 'error' in r else 'every assert held'}  "
                  f"{r.get('numbers', {})} (page: {r['page']})", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for r in runs.values():
        r.pop("run")
    if args.output and args.output.exists() and set(args.only) != set(CHAPTERS):
        # some chapters run again: the others keep their records (those still in CHAPTERS)
        kept = {r["chapter"]: r for r in json.loads(args.output.read_text())["chapters"]}
        kept |= {r["chapter"]: r for r in records}
        records = [kept[name] for name in CHAPTERS if name in kept]
    log = {"machine": gpu_book.machine("cpu"), "date": datetime.date.today().isoformat(),
           "runs": runs, "chapters": records}
    print(table(log))
    if args.output:
        args.output.write_text(json.dumps(log, indent=1) + "\n")
    return 1 if any("error" in r for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
