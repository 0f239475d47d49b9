"""benchmarks/gpu_book.py, the book on a GPU, in its small CPU mode: two chapters, the book's
model cache (the build trains it; a fresh checkout trains it here first)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_book_runs_chapters_and_reports_their_numbers(tmp_path):
    log = tmp_path / "book.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_book.py"), "--device", "cpu",
         "--only", "intro", "04_masked_autoencoder", "--cache",
         str(ROOT / "book" / "runs" / "cache"), "--output", str(log)],
        capture_output=True, text=True, timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = json.loads(log.read_text())["chapters"]
    assert [r["chapter"] for r in records] == ["intro", "04_masked_autoencoder"]
    intro = records[0]
    assert intro["pass"] == "warm" and "error" not in intro
    assert 0 < intro["numbers"]["masked loss / zeros"] < 0.6  # the intro's own assert
    assert all(r["peak_mb"] > 0 and r["seconds"] > 0 for r in records)
    assert "| intro |" in done.stdout and "| 04_masked_autoencoder |" in done.stdout


def test_a_chapter_that_stops_fails_the_run(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_book

    monkeypatch.setitem(gpu_book.KEY_NUMBERS, "intro", {})
    broken = tmp_path / "book"
    broken.mkdir()
    (broken / "intro.ipynb").write_text(json.dumps({
        "cells": [{"cell_type": "code", "execution_count": None, "id": "x", "metadata": {},
                   "outputs": [], "source": "raise ValueError('broken chapter')"}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    monkeypatch.setattr(gpu_book, "ROOT", tmp_path)
    monkeypatch.setattr(gpu_book, "chapters", lambda: ["intro"])
    record = gpu_book.run_chapter("intro", tmp_path / "work", timeout=60)
    assert "broken chapter" in record["error"]


def test_alone_gives_every_chapter_an_empty_cache_of_its_own(tmp_path, monkeypatch):
    """--alone: the Colab case, where a chapter opened from its badge finds nothing trained."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_book

    book = tmp_path / "book"
    book.mkdir()
    source = ("import os, pathlib\n"
              "cache = pathlib.Path(os.environ['MAE_RUNS_CACHE'])\n"
              "cache.mkdir(parents=True, exist_ok=True)\n"
              "(cache / '{name}').write_text('trained')\n"
              "seen = len(list(cache.iterdir()))  # models in the cache, this one's included")
    for name in ("a", "b"):
        (book / f"{name}.ipynb").write_text(json.dumps({
            "cells": [{"cell_type": "code", "execution_count": None, "id": "x", "metadata": {},
                       "outputs": [], "source": source.format(name=name)}],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                        "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}))
    monkeypatch.setattr(gpu_book, "ROOT", tmp_path)
    monkeypatch.setattr(gpu_book, "REFERENCE", tmp_path / "none.json")
    monkeypatch.setattr(gpu_book, "chapters", lambda: ["a", "b"])
    for name in ("a", "b"):
        monkeypatch.setitem(gpu_book.KEY_NUMBERS, name, {"seen": "seen"})
    monkeypatch.setenv("MAE_RUNS_CACHE", "")  # both restored afterwards: main() sets them
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    log = tmp_path / "log.json"
    assert gpu_book.main(["--device", "cpu", "--alone", "--output", str(log)]) == 0
    seen = {(r["pass"], r["chapter"]): r["numbers"]["seen"]
            for r in json.loads(log.read_text())["chapters"]}
    # one shared cache in the cold pass (b finds a's model); an empty one each when alone
    assert seen == {("cold", "a"): 1, ("cold", "b"): 2, ("alone", "a"): 1, ("alone", "b"): 1}
