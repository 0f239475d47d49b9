"""benchmarks/fp16_quick.py, the T4's precision path for the whole quick pre-training: the
pieces it reads a run with and swaps the chapters' shared model with (the run itself takes
20-25 minutes on a CPU; its results are shipped in mae_tutorial/results/fp16_quick.json)."""

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import fp16_quick  # noqa: E402


def test_skipped_steps_counts_what_a_cpu_scaler_skipped():
    if not hasattr(torch, "amp") or not hasattr(torch.amp, "GradScaler"):
        pytest.skip("this torch has no torch.amp.GradScaler")
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    scaler = torch.amp.GradScaler("cpu")
    bad = {1, 4, 5}  # steps whose gradient overflows
    for step in range(8):
        optimizer.zero_grad()
        loss = (weight * (float("inf") if step in bad else 1.0)).sum()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    assert fp16_quick.skipped_steps(scaler.state_dict(), steps=8) == len(bad)
    assert fp16_quick.skipped_steps({}, steps=8) is None  # no scaler: fp32 or bf16
    assert fp16_quick.skipped_steps(scaler.state_dict(), steps=5000) is None  # may have grown


def test_training_seconds_adds_up_the_logged_speeds():
    rows = [{"step": 10, "loss": 1.0, "images_per_s": 64.0},
            {"step": 20, "loss": 0.9, "images_per_s": 32.0},
            {"step": 25, "loss": 0.8, "images_per_s": 64.0}]
    assert fp16_quick.training_seconds(rows, batch_size=64) == pytest.approx(10 + 20 + 5)
    assert fp16_quick.training_seconds([{"step": 1, "loss": 1.0}], 64) is None


def test_curve_gap_compares_the_steps_both_logged():
    a = [[10, 2.0], [20, 1.0], [30, 0.5]]
    b = [[10, 2.2], [20, 1.05], [25, 9.0]]
    assert fp16_quick.curve_gap(a, b) == pytest.approx(0.1)


def test_chapter_cache_links_every_model_but_the_shared_one(tmp_path):
    source, run, key = tmp_path / "book", tmp_path / "fp16", "quick-abc-def"
    for name in ("quick-other-def", key):
        (source / name).mkdir(parents=True)
        (source / name / "checkpoint.pth").write_text(name)
    (source / f"{key}.lock").write_text("")
    (source / "baselines-x.json").write_text("{}")
    run.mkdir()
    (run / "checkpoint.pth").write_text("fp16 weights")
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
    (run / "finetune-123.json").write_text("{}")  # the fp16 run's own fine-tuning: left out

    cache = fp16_quick.chapter_cache(source, run, tmp_path / "cache", key)

    assert sorted(p.name for p in cache.iterdir()) == ["baselines-x.json", key, "quick-other-def"]
    assert (cache / "quick-other-def").is_symlink()
    assert (cache / "quick-other-def").resolve() == (source / "quick-other-def").resolve()
    assert not (cache / key).is_symlink()
    assert (cache / key / "checkpoint.pth").read_text() == "fp16 weights"
    assert not (cache / key / "finetune-123.json").exists()
    assert (source / key / "checkpoint.pth").read_text() == key  # the book's model untouched


def test_the_chapters_checked_are_those_that_load_the_shared_model():
    from mae_tutorial.config import config_from_preset
    from mae_tutorial.lab.cache import run_key

    readers = set()
    for path in (ROOT / "book").glob("*.ipynb"):
        cells = json.loads(path.read_text())["cells"]
        code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        if "book_model()" in code:
            readers.add(path.stem)
    assert readers and set(fp16_quick.CHAPTERS) == readers
    assert fp16_quick.shared_key() != f"quick-{run_key(config_from_preset('quick', amp='fp16'))}"


def test_the_readme_shows_the_shipped_run():
    log = json.loads(fp16_quick.RESULTS.read_text())
    assert fp16_quick.table(log) in (ROOT / "benchmarks" / "README.md").read_text()
    assert {r["chapter"] for r in log["chapters"]} == set(fp16_quick.CHAPTERS)
    fp16 = log["runs"]["fp16"]
    assert fp16["autocast"] == "float16" and fp16["steps"] == 936
