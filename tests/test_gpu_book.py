"""benchmarks/gpu_book.py, the book on a GPU, in its small CPU mode: two chapters, the book's
model cache (the build trains it; a fresh checkout trains it here first)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_merge_measures_one_chapter_again_and_keeps_the_rest(tmp_path, monkeypatch):
    """--merge --only b --passes 0 --alone: b's alone record and its code hash are replaced,
    its in-order record is kept and dated, chapter a is untouched; a pass the log lacks
    fails."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_book

    book = tmp_path / "book"
    book.mkdir()

    def write(name: str, value: int) -> None:
        (book / f"{name}.ipynb").write_text(json.dumps({
            "cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}",
                       "metadata": {}, "outputs": [], "source": source}
                      for i, source in enumerate(["import os", f"value = {value}"])],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                        "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}))
        monkeypatch.setitem(gpu_book.KEY_NUMBERS, name, {"value": "value"})

    write("a", 1)
    write("b", 2)
    monkeypatch.setattr(gpu_book, "ROOT", tmp_path)
    monkeypatch.setattr(gpu_book, "REFERENCE", tmp_path / "none.json")
    monkeypatch.setattr(gpu_book, "chapters", lambda: ["a", "b"])
    monkeypatch.setenv("MAE_RUNS_CACHE", "")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    log = tmp_path / "log.json"
    assert gpu_book.main(["--device", "cpu", "--alone", "--output", str(log)]) == 0
    before = json.loads(log.read_text())
    hashes = json.loads(gpu_book.code_log(log).read_text())["code"]
    write("b", 3)  # b's code changes: its timings are out of date
    assert gpu_book.code_hash("b") != hashes["b"]
    assert gpu_book.main(["--device", "cpu", "--only", "b", "--merge", "--passes", "0",
                          "--alone", "--output", str(log)]) == 0
    after = json.loads(log.read_text())
    records = {(r["chapter"], r["pass"]): r for r in after["chapters"]}
    assert [(r["chapter"], r["pass"]) for r in after["chapters"]] == \
        [(r["chapter"], r["pass"]) for r in before["chapters"]]  # same rows, same order
    assert [r for r in after["chapters"] if r["chapter"] == "a"] == \
        [r for r in before["chapters"] if r["chapter"] == "a"]
    assert records["b", "alone"]["numbers"] == {"value": 3}
    assert records["b", "cold"]["numbers"] == {"value": 2}  # not run again: kept, dated
    assert records["b", "cold"]["measured"] == before["date"]
    assert after["merged"][0]["chapters"] == ["b"]
    code = json.loads(gpu_book.code_log(log).read_text())["code"]
    assert code == {"a": hashes["a"], "b": gpu_book.code_hash("b")}
    with pytest.raises(ValueError, match="passes the old log does not have"):
        gpu_book.merge_log(before, {"chapters": [{"chapter": "b", "pass": "twice"}],
                                    "date": "d", "machine": "m"}, ["b"])
    # a chapter new to the book joins the log in the toc's place, pass by pass
    monkeypatch.setattr(gpu_book, "chapters", lambda: ["a", "new", "b"])
    new = [{"chapter": "new", "pass": p, "seconds": 1.0} for p in ("cold", "alone")]
    grown = gpu_book.merge_log(after, {"chapters": new, "date": "d", "machine": "m"}, ["new"])
    assert [(r["chapter"], r["pass"]) for r in grown["chapters"]] == [
        (c, p) for p in ("cold", "alone") for c in ("a", "new", "b")]
