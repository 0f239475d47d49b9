"""The whole book on this machine: every chapter executed as a reader who clones the repository
runs it, one model cache shared by the chapters (cold: empty at the start, unless --cache), and
per chapter the wall time, the peak memory and the chapter's key numbers, beside the CPU run the
package ships (mae_tutorial/results/book_cpu.json). With --passes 2 the book runs twice: the
first time trains the shared models, the second finds them (a chapter's own time).

    python benchmarks/gpu_book.py                    # on a GPU: every chapter, cold cache
    python benchmarks/gpu_book.py --device cpu --passes 2 --alone \
        --output mae_tutorial/results/book_cpu.json  # the CPU reference
    python benchmarks/gpu_book.py --device cpu --only intro 02_patches_and_masking  # small
    python benchmarks/gpu_book.py --device cpu --only appendix_ablations --merge \
        --cache book/runs/cache --passes 1 --alone \
        --output mae_tutorial/results/book_cpu.json   # one chapter's times measured again

On a GPU the book runs the same settings as on a CPU (one budget), so the key numbers should
agree up to the arithmetic of the device (bf16 or fp16 against the CPU's bf16 or fp32).
Writes a JSON log (--output) and exits 1 if a chapter stopped.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import torch
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "mae_tutorial" / "results" / "book_cpu.json"

# What each chapter measures, read from its kernel after its last cell: name -> expression.
KEY_NUMBERS: dict[str, dict[str, str]] = {
    "intro": {"masked loss / zeros": "score['ratio']"},
    "01_autoencoders": {"autoencoder MSE": "ae_test"},
    "02_patches_and_masking": {"interpolation MSE, random 75%": "mean['random 75%']"},
    "03_vision_transformer": {},
    "04_masked_autoencoder": {},
    "05_reconstruction_loss": {"k-NN MAE %": "mae_acc", "k-NN raw pixels %": "raw_acc",
                               "k-NN loss on all %": "all_acc"},
    "06_training": {"short run loss / zeros": "after['ratio']"},
    "07_evaluation": {"k-NN %": "results['k-NN, mean', 'MAE']",
                      "linear probe %": "results['linear probe, mean', 'MAE']",
                      "fine-tuned %": "results['fine-tuning', 'MAE']",
                      "from scratch %": "results['fine-tuning', 'random init']"},
    "representation": {"MAE probe, mean %": "live['MAE', 'mean']['linear_probe']",
                       "MoCo v3 probe, cls %": "live['MoCo v3', 'cls']['linear_probe']"},
    "08_pretrained_mae": {"small MAE loss": "small_loss"},
    "09_scaling_up": {},
    "appendix_errata": {"MAE probe %": "scores['MAE']['linear_probe']",
                        "write-up probe %": "scores['write-up']['linear_probe']"},
    "appendix_ablations": {"baseline k-NN %": "here['knn']",
                           "baseline fine-tuned %": "here['finetune']"},
}

# Appended to each notebook: peak memory and the key numbers, as one JSON line.
PROBE = """
import json as _json, resource as _resource, torch as _torch
_found = {}
for _name, _expr in %r.items():
    try:
        _found[_name] = round(float(eval(_expr)), 4)
    except Exception:
        _found[_name] = None
_peak = (_torch.cuda.max_memory_allocated() / 2**20 if _torch.cuda.is_available()
         else _resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss / 1024)
print("GPU_BOOK " + _json.dumps({"peak_mb": round(_peak), "numbers": _found}))
"""


def chapters() -> list[str]:
    """The notebooks of the table of contents, in its order (names without .ipynb)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    return [Path(f).name for f in files if (ROOT / f"{f}.ipynb").exists()]


def code_hash(name: str) -> str:
    """SHA-256 of a chapter's code cells after its setup cell (a new package version changes
    every setup cell, not what a chapter computes): a log's timings hold for these hashes."""
    cells = json.loads((ROOT / "book" / f"{name}.ipynb").read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"][1:]
    return hashlib.sha256("\n\0\n".join(code).encode()).hexdigest()


def code_log(path: Path) -> Path:
    """Where the code hashes of the log `path` are kept: beside it, `<stem>_code.json`."""
    return path.with_name(f"{path.stem}_code.json")


def merge_log(old: dict, new: dict, names: list[str]) -> dict:
    """`old` with the chapters `names` measured again: each pass of theirs that `new` ran
    replaces the old record; a pass it did not run (the book in order, "cold") keeps the old
    record, marked with the date it was measured. A chapter the old log lacks is added with the
    passes `new` ran, in the toc's order. The other chapters are left as they were."""
    fresh = {(r["chapter"], r["pass"]): r for r in new["chapters"]}
    kept = []
    for r in old["chapters"]:
        if r["chapter"] not in names:
            kept.append(r)
        elif (r["chapter"], r["pass"]) in fresh:
            kept.append(fresh.pop((r["chapter"], r["pass"])))
        else:
            kept.append(r | {"measured": r.get("measured", old["date"])})
    known = {r["chapter"] for r in old["chapters"]}
    added = [r for r in new["chapters"] if r["chapter"] not in known]  # a new chapter
    if set(fresh) - {(r["chapter"], r["pass"]) for r in added}:
        raise ValueError(f"passes the old log does not have: {sorted(fresh)}; run the whole "
                         "book (no --merge) to add a pass")
    # the log runs pass by pass, each in the toc's order: a new chapter goes in its place
    passes = list(dict.fromkeys(r["pass"] for r in old["chapters"] + added))
    order = {name: i for i, name in enumerate(chapters())}
    kept = sorted(kept + added, key=lambda r: (passes.index(r["pass"]),
                                               order.get(r["chapter"], len(order))))
    merged = [{"chapters": names, "date": new["date"], "machine": new["machine"]}]
    return old | {"chapters": kept, "merged": old.get("merged", []) + merged}


def run_chapter(name: str, workdir: Path, timeout: int) -> dict:
    """Execute one chapter in `workdir` with the probe appended; its record."""
    nb = nbformat.read(ROOT / "book" / f"{name}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE % KEY_NUMBERS.get(name, {})))
    workdir.mkdir(parents=True, exist_ok=True)
    # a notebook may allow its cells more, as the book build reads it (myst-nb's metadata)
    timeout = max(timeout, nb.metadata.get("mystnb", {}).get("execution_timeout", 0))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    start = time.perf_counter()
    record: dict = {"chapter": name}
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as exc:
        record["error"] = str(exc).strip().splitlines()[-1][:300]
    record["seconds"] = round(time.perf_counter() - start, 1)
    for out in nb.cells[-1].get("outputs", []):
        text = out.get("text", "")
        if text.startswith("GPU_BOOK "):
            record.update(json.loads(text.removeprefix("GPU_BOOK ")))
    return record


def machine(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__}, native CPU bf16: "
            f"{torch.cpu._is_avx512_bf16_supported()}")


def table(records: list[dict], reference: dict[str, dict]) -> str:
    """A markdown table: one row per chapter, its passes' seconds, and the CPU reference's."""
    passes = list(dict.fromkeys(r["pass"] for r in records))
    head = " | ".join(f"{p} s" for p in passes)
    lines = [f"| chapter | {head} | peak MB | CPU ref. s | key numbers: here (CPU ref.) |",
             "| --- | " + "--- | " * len(passes) + "--- | --- | --- |"]
    for name in dict.fromkeys(r["chapter"] for r in records):
        rows = [r for r in records if r["chapter"] == name]
        last, ref = rows[-1], reference.get(name, {})
        numbers = ", ".join(
            f"{k} {v:.3g}" + (f" ({ref['numbers'][k]:.3g})"
                              if ref.get("numbers", {}).get(k) is not None else "")
            if v is not None else f"{k} n/a" for k, v in last.get("numbers", {}).items())
        stopped = "".join(f" **stopped ({r['pass']}): {r['error']}**" for r in rows
                          if "error" in r)
        seconds = " | ".join(f"{r['seconds']:.0f}" for r in rows)
        ref_s = " / ".join(f"{r['seconds']:.0f}" for r in ref.get("runs", [])) or "n/a"
        lines.append(f"| {name} | {seconds} | {max(r.get('peak_mb', 0) for r in rows)} | "
                     f"{ref_s} | {numbers}{stopped} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"],
                        default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--only", nargs="+", help="chapter names (default: every chapter)")
    parser.add_argument("--cache", type=Path, help="a model cache to reuse (default: empty)")
    parser.add_argument("--output", type=Path, default=None, help="the JSON log to write")
    parser.add_argument("--merge", action="store_true",
                        help="with --only and an existing --output: replace only those "
                             "chapters' records (and their code hashes) in the log")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--passes", type=int, default=1, choices=[0, 1, 2],
                        help="2: run the book twice with the same cache (cold, then warm); "
                             "0: only the --alone pass")
    parser.add_argument("--alone", action="store_true",
                        help="then run every chapter once more with an empty cache of its own, "
                             "as a Colab reader who opens it from its badge (pass 'alone')")
    args = parser.parse_args(argv)
    if args.passes == 0 and not args.alone:
        parser.error("--passes 0 runs nothing; add --alone, or choose 1 or 2 passes")
    names = args.only or chapters()
    if args.merge and not (args.only and args.output and args.output.exists()):
        parser.error("--merge needs --only CHAPTERS and an existing --output log")
    unknown = sorted(set(names) - set(chapters()))
    if unknown:
        parser.error(f"unknown chapters {unknown}; choose from {chapters()}")
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the kernels see no GPU
    reference = {}
    if REFERENCE.exists() and args.output != REFERENCE:
        for r in json.loads(REFERENCE.read_text())["chapters"]:
            reference.setdefault(r["chapter"], {"runs": []})["runs"].append(r)
            reference[r["chapter"]]["numbers"] = r.get("numbers", {})
    work = Path(tempfile.mkdtemp(prefix="gpu-book-"))
    cache = args.cache.resolve() if args.cache else work / "cache"
    os.environ["MAE_RUNS_CACHE"] = str(cache)
    print(f"{machine(args.device)}; model cache {cache}", flush=True)
    records, start = [], time.perf_counter()
    plan = [("warm" if n or args.cache else "cold", n) for n in range(args.passes)]
    plan += [("alone", args.passes)] if args.alone else []
    try:
        for label, n in plan:
            for name in names:
                if label == "alone":  # nothing trained by an earlier chapter
                    os.environ["MAE_RUNS_CACHE"] = str(work / f"{name}-{n}" / "cache")
                r = run_chapter(name, work / f"{name}-{n}", args.timeout) | {"pass": label}
                records.append(r)
                print(f"{label} {name:<26} {r['seconds']:6.0f} s  peak {r.get('peak_mb', '?')} "
                      f"MB  {r.get('numbers', {})}"
                      f"{'  STOPPED: ' + r['error'] if 'error' in r else ''}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - start
    print(f"\n{len(records)} chapter runs in {total / 60:.1f} minutes\n")
    print(table(records, reference))
    if args.output:
        log = {"machine": machine(args.device), "device": args.device,
               "date": datetime.date.today().isoformat(), "total_s": round(total),
               "chapters": records}
        code = {"log": args.output.name, "date": log["date"],
                "code": {name: code_hash(name) for name in names}}
        if args.merge:
            log = merge_log(json.loads(args.output.read_text()), log, names)
            old_code = json.loads(code_log(args.output).read_text())
            code = old_code | {"code": old_code["code"] | code["code"]}
        args.output.write_text(json.dumps(log, indent=1) + "\n")
        code_log(args.output).write_text(json.dumps(code, indent=1) + "\n")
    return 1 if any("error" in r for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
