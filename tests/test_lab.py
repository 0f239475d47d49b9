import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mae_tutorial as mt
from mae_tutorial.checkpoint import CHECKPOINT
from mae_tutorial.lab import cache

SMALL = dict(synthetic_size=256, batch_size=32, max_steps=3, checkpoint_every=1, log_every=1)


def test_trains_once_then_loads_the_same_model(tmp_path, capfd):
    model, run = cache.pretrain_once("quick", cache=tmp_path, **SMALL)
    out, err = capfd.readouterr()
    assert out == "" and "pre-training" in err  # a progress bar on stderr, nothing else
    assert (run / CHECKPOINT).exists() and len(mt.checkpoint.read_metrics(run)) == 3
    again, run_again = cache.pretrain_once("quick", cache=tmp_path, **SMALL)
    assert capfd.readouterr() == ("", "") and run_again == run  # loading says nothing
    assert not again.training
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values(),
                            strict=True):
        assert a.equal(b), name


def test_the_cache_folder_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAE_RUNS_CACHE", raising=False)
    assert cache.default_cache() == Path("runs/cache")
    monkeypatch.setenv("MAE_RUNS_CACHE", str(tmp_path / "shared"))
    _, run = cache.pretrain_once("quick", **SMALL)
    assert run.parent == tmp_path / "shared" and not (tmp_path / "runs").exists()


def test_a_changed_setting_trains_anew_and_replaces_the_stale_run(tmp_path):
    _, first = cache.pretrain_once("quick", cache=tmp_path, **SMALL)
    _, second = cache.pretrain_once("quick", cache=tmp_path, **{**SMALL, "max_steps": 2})
    assert second != first and mt.checkpoint.read_metrics(second)[-1]["step"] == 2
    assert first.exists() and second.exists()  # other settings: both kept
    # where and how a run is shown is not part of its key
    cfg = mt.config.config_from_preset("quick", **SMALL)
    shown = mt.config.config_from_preset("quick", **{**SMALL, "output_dir": "elsewhere",
                                                     "log_every": 3})
    assert cache.run_key(cfg) == cache.run_key(shown)
    assert cache.run_key(cfg) != cache.run_key(mt.config.config_from_preset(
        "quick", **{**SMALL, "mask_ratio": 0.5}))


def test_a_changed_package_trains_anew_and_removes_the_stale_run(tmp_path, monkeypatch):
    cfg = mt.config.config_from_preset("quick", **SMALL)
    _, old = cache.pretrain_once("quick", cache=tmp_path / "cache", **SMALL)
    # another process is training the same settings with yet other code: left alone
    busy = tmp_path / "cache" / f"{old.name.rsplit('-', 1)[0]}-0123456789.partial"
    busy.mkdir()
    fake = tmp_path / "pkg"
    fake.mkdir()
    (fake / "viz.py").write_text("# figures only: no run executes this module\n")
    before = cache.run_key(cfg)
    monkeypatch.setattr(cache, "PACKAGE", fake)
    assert cache.run_key(cfg) != before  # the training modules are gone from this fake
    (fake / "train.py").write_text("from .steps import train_step  # another training loop\n")
    (fake / "steps.py").write_text("def train_step(): ...\n")
    after = cache.run_key(cfg)
    (fake / "viz.py").write_text("# other figures\n")
    assert cache.run_key(cfg) == after  # a module the trainer does not import: not in the key
    (fake / "steps.py").write_text("def train_step(): return 1\n")
    assert cache.run_key(cfg) != after  # a module it imports, found without a list
    (fake / "steps.py").write_text("def train_step(): ...\n")
    assert after != before and after.split("-")[0] == before.split("-")[0]  # same settings
    # a run of the same settings by another precision (another machine's): kept, linked
    # or not
    other = tmp_path / "cache" / f"{old.name.rsplit('-', 1)[0]}-aaaaaaaaaa"
    other.mkdir()
    (other / cache.MADE_BY).write_text(json.dumps({"torch": torch.__version__,
                                                  "amp": "torch.float16"}))
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(old, elsewhere)
    linked = tmp_path / "cache" / f"{old.name.rsplit('-', 1)[0]}-bbbbbbbbbb"
    linked.symlink_to(elsewhere)
    _, new = cache.pretrain_once("quick", cache=tmp_path / "cache", **SMALL)
    assert new != old and new.exists() and not old.exists()
    assert not (tmp_path / "cache" / f"{old.name}.lock").exists()
    assert busy.exists() and other.exists() and linked.exists() and elsewhere.exists()


def test_two_processes_asking_at_once_train_once(tmp_path):
    code = (f"import mae_tutorial as mt; mt.lab.pretrain_once('quick', cache=r'{tmp_path}', "
            "synthetic_size=256, batch_size=32, max_steps=3)")
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    # only the process that trains shows a progress bar; the other waits, then loads
    assert sorted("pre-training" in err for err in errors) == [False, True], errors
    assert len([d for d in tmp_path.iterdir() if d.is_dir()]) == 1


def test_an_interrupted_run_is_continued_not_taken_as_finished(tmp_path):
    cfg = mt.config.config_from_preset("quick", progress=False, **SMALL)
    key = f"quick-{cache.run_key(cfg)}"
    partial = tmp_path / f"{key}.partial"
    mt.train.train(dataclasses.replace(cfg, output_dir=str(partial), stop_after=2))
    _, run = cache.pretrain_once("quick", cache=tmp_path, **SMALL)
    assert run == tmp_path / key and not partial.exists()
    steps = [m["step"] for m in mt.checkpoint.read_metrics(run)]
    assert steps == [1, 2, 3]  # steps 1-2 from the interrupted session, 3 from the resume


def test_unknown_preset_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown preset"):
        cache.pretrain_once("medium", cache=tmp_path)


def test_the_book_model_is_the_quick_preset_on_every_device(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(cache, "pretrain_once", lambda preset, **kw: seen.append((preset, kw)))
    cache.book_model()
    cache.book_model(mask_ratio=0.5)
    assert seen == [("quick", {}), ("quick", {"mask_ratio": 0.5})]


def test_a_fine_tuning_is_computed_once_per_settings_and_data(tmp_path, monkeypatch, capfd):
    model, run = cache.pretrain_once("quick", cache=tmp_path, **SMALL)
    data = mt.data.load_dataset("synthetic", synthetic_size=128)
    test = mt.data.load_dataset("synthetic", synthetic_size=64, seed=5)
    calls = []
    real = cache.finetune

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(cache, "finetune", counting)
    first = cache.finetune_once(run, data, test, model, epochs=1, batch_size=32)
    capfd.readouterr()
    again = cache.finetune_once(run, data, test, model, epochs=1, batch_size=32)
    assert again == first and len(calls) == 1 and capfd.readouterr().out == ""
    explicit = cache.finetune_once(run, data, test, model, epochs=1, batch_size=32,
                                  pretrained=True, seed=0)  # the defaults, passed
    assert explicit == first and len(calls) == 1
    assert 0 <= first["accuracy"] <= 100 and first["steps"] == 4
    cache.finetune_once(run, data, test, model, epochs=1, batch_size=64)  # other settings
    other = mt.data.load_dataset("synthetic", synthetic_size=128, seed=3)
    cache.finetune_once(run, other, test, model, epochs=1, batch_size=32)  # other data
    assert len(calls) == 3 and len(list(run.glob("finetune-*.json"))) == 3
    assert not list(run.glob("*.tmp"))


def test_measurements_ship_with_the_package():
    assert "NVIDIA H200" in mt.lab.read_result("gpu_check_h200.log")
    with pytest.raises(FileNotFoundError, match="ships.*ablations.json"):
        mt.lab.read_result("no_such_file.json")


def test_the_installed_package_carries_its_measurements(tmp_path):
    """A wheel (what pip installs on Colab) holds the results files chapters read."""
    import zipfile

    root = Path(mt.__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(root)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("mae_tutorial-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {p.name for p in (root / "mae_tutorial" / "results").iterdir()}
    assert shipped and {f"mae_tutorial/results/{n}" for n in shipped} <= set(names)


def test_the_shipped_cpu_figures_are_the_benchmark_readmes():
    """cpu_speed.json (what chapter 9 reads) holds the figures benchmarks/README.md reports."""
    import re

    cpu = mt.lab.read_json("cpu_speed.json")
    readme = " ".join((Path(mt.__file__).resolve().parents[1] / "benchmarks" / "README.md")
                      .read_text().split())
    for row in cpu["training_step"]:
        assert row["command"].split("python ")[1].split()[0] in readme, row
    rows = {(r["model"], r["amp"]): r["images_per_s"] for r in cpu["training_step"]}
    assert f"| fp32 | {rows['vit_mini_patch4', 'fp32']} |" in readme
    assert f"(the default here) | **{rows['vit_mini_patch4', 'bf16']}** |" in readme
    tiny = re.search(r"`vit_tiny_patch4` \(`--steps 3 --rounds 3`\) \| (\d+) / \d+ .*? \| "
                     r"(\d+) / \d+", readme)
    assert (int(tiny[1]), int(tiny[2])) == (rows["vit_tiny_patch4", "fp32"],
                                            rows["vit_tiny_patch4", "bf16"])
    c = cpu["compile"]
    assert (f"the first two compiled steps took {c['first_two_steps_s']} s" in readme and
            f"({c['compiled_fp32_images_per_s']} vs {c['eager_fp32_images_per_s']} images/s)"
            in readme and f"eager bf16 ({c['eager_bf16_images_per_s']}," in readme)


def test_the_shipped_ablations_are_the_benchmark_readmes():
    """ablations.json (what chapter 7 and the ablations appendix read) holds the table that
    benchmarks/README.md shows, row by row, and the fine-tuning seeds it quotes."""

    sweep = mt.lab.read_json("ablations.json")
    readme = (Path(mt.__file__).resolve().parents[1] / "benchmarks" / "README.md").read_text()
    lines = {line.split("|")[1].strip().strip("`"): line for line in readme.splitlines()
             if line.startswith("| `")}
    for name, row in sweep["rows"].items():
        cells = [c.strip() for c in lines[name].split("|")[3:6]]
        shown = [float(c.split()[0]) for c in cells]  # "45.0 (-0.7)" -> 45.0
        assert shown == [round(row[k], 1) for k in ("knn", "linear_probe", "finetune")], name
    seeds = sweep["finetune_seeds"]["baseline"]
    assert f"moved the baseline from {seeds[0]:.1f} to {seeds[1]:.1f}" in " ".join(readme.split())


def test_the_shipped_converged_judge_is_the_benchmark_readmes(capsys):
    """finetune_judge.json (what chapter 7 and the ablations appendix read) holds the table
    that benchmarks/README.md shows: every row `finetune_judge.py --print` prints is there."""
    root = Path(mt.__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "benchmarks"))
    try:
        import finetune_judge
    finally:
        sys.path.remove(str(root / "benchmarks"))
    finetune_judge.print_table(mt.lab.read_json("finetune_judge.json"))
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| `")]
    readme = (root / "benchmarks" / "README.md").read_text().splitlines()
    assert len(rows) >= 4 and [r for r in rows if r not in readme] == []


def test_exact_fp32_turns_tf32_off_inside_and_restores_it():
    import torch

    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        with mt.runtime.exact_fp32():
            assert not torch.backends.cuda.matmul.allow_tf32
            assert not torch.backends.cudnn.allow_tf32
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        with pytest.raises(ValueError), mt.runtime.exact_fp32():
            raise ValueError("restored on the way out, too")
        assert torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_the_shipped_gpu_figures_are_their_logs():
    """Chapter 9 reads gpu_check_h200.json and gpu_throughput_h200.json: each holds exactly the
    figures of the log beside it, as benchmarks/gpu_log.py reads them."""
    import importlib.util

    script = Path(mt.__file__).resolve().parents[1] / "benchmarks" / "gpu_log.py"
    spec = importlib.util.spec_from_file_location("gpu_log", script)
    gpu_log = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_log)
    for name in ("gpu_check_h200", "gpu_throughput_h200"):
        shipped = mt.lab.read_json(f"{name}.json")
        assert shipped == gpu_log.read_log(mt.lab.read_result(f"{name}.log")), name
        assert shipped["device"] == "NVIDIA H200" and len(shipped["throughput"]) >= 8
    check = mt.lab.read_json("gpu_check_h200.json")
    first = check["throughput"][0]
    assert (first["model"], first["batch"], first["amp"], first["images_per_s"]) == (
        "vit_mini_patch4", 64, "bf16", 4216.0)  # the log's first row, "| ... | 4,216 | ..."
    assert check["matmul_tflops"] == 791.5 and len(check["checks"]) == 11


def test_the_timed_step_is_the_trainers_step(tmp_path):
    """lab.speed times `train.train_step` itself: its first steps give the losses a run of the
    same settings logs."""
    cfg = mt.config.config_from_preset("quick", **{**SMALL, "log_every": 1,
                                                   "output_dir": str(tmp_path / "run")})
    mt.train.train(cfg)
    logged = [m["loss"] for m in mt.checkpoint.read_metrics(tmp_path / "run")]
    run, step = mt.lab.speed.training_step(cfg)
    assert run.model.training and [step().item() for _ in range(3)] == logged
    rates = mt.lab.speed.images_per_second({"a": cfg, "b": cfg}, steps=1, rounds=1)
    assert set(rates) == {"a", "b"} and all(r > 0 for r in rates.values())


def test_the_baselines_are_computed_once_per_settings_architecture_and_data(tmp_path,
                                                                              monkeypatch):
    tiny = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4,
                decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)
    model = mt.MaskedAutoencoderViT(**tiny).eval()
    data = mt.data.load_dataset("synthetic", synthetic_size=120)
    test = mt.data.load_dataset("synthetic", synthetic_size=60, seed=5)
    calls = []
    real = cache.baseline_table

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(cache, "baseline_table", counting)
    first = cache.baselines_once(model, data, test, cache=tmp_path, probe_epochs=2)
    assert first == real(model, data, test, probe_epochs=2) and len(calls) == 1
    files = list(tmp_path.glob("baselines-*.json"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))
    again = cache.baselines_once(model, data, test, cache=tmp_path, probe_epochs=2,
                                 pool="mean", seed=0)  # the defaults, passed
    assert again == first and len(calls) == 1
    trained = mt.MaskedAutoencoderViT(**tiny).eval()  # other weights, same architecture
    assert not trained.patch_embed.proj.weight.equal(model.patch_embed.proj.weight)
    assert cache.baselines_once(trained, data, test, cache=tmp_path, probe_epochs=2) == first
    assert len(calls) == 1  # the random-init ViT never reads the weights
    other = mt.data.load_dataset("synthetic", synthetic_size=120, seed=3)
    for model_, data_, kwargs in ((model, data, {"seed": 1}),  # another seed
                                  (model, other, {}),  # other data
                                  (model, data, {"pool": "cls"}),  # another setting
                                  (mt.MaskedAutoencoderViT(**{**tiny, "depth": 1}), data, {})):
        cache.baselines_once(model_, data_, test, cache=tmp_path, probe_epochs=2, **kwargs)
    assert len(calls) == 5 and len(list(tmp_path.glob("baselines-*.json"))) == 5
    # the cache folder of the book by default; new evaluation code replaces the old file
    monkeypatch.setenv("MAE_RUNS_CACHE", str(tmp_path))
    fake = tmp_path / "pkg"
    fake.mkdir()
    (fake / "evaluate.py").write_text("# other evaluation code\n")
    monkeypatch.setattr(cache, "PACKAGE", fake)
    assert cache.baselines_once(model, data, test, probe_epochs=2) == first
    assert len(calls) == 6 and len(list(tmp_path.glob("baselines-*.json"))) == 5
    assert not files[0].exists()


def test_the_converged_judges_runs_are_read_by_setting(tmp_path, monkeypatch):
    import json

    from mae_tutorial.lab import results

    runs = {"synthetic/6/1/MAE/30 epochs at 0.01": {"accuracy": 94.0, "curve": [50.0, 94.0]},
            "synthetic/6/0/MAE/30 epochs at 0.01": {"accuracy": 93.0, "curve": [40.0, 93.0]},
            "synthetic/6/0/from scratch/30 epochs at 0.01": {"accuracy": 91.0, "curve": [9, 91]},
            "synthetic/18/0/MAE/30 epochs at 0.01": {"accuracy": 96.0, "curve": [60.0, 96.0]}}
    (tmp_path / "finetune_judge.json").write_text(json.dumps({"runs": runs}))
    monkeypatch.setattr(results, "RESULTS", tmp_path)
    six = results.finetune_judge_runs()
    assert six == {"MAE": {0: [40.0, 93.0], 1: [50.0, 94.0]}, "from scratch": {0: [9, 91]}}
    assert list(six["MAE"]) == [0, 1]  # seeds in order, whatever the file's order
    assert results.finetune_judge_runs(pretrain_epochs=18, field="accuracy") == {
        "MAE": {0: 96.0}}
    with pytest.raises(KeyError, match="synthetic/6/30 epochs at 0.01.*finetune_judge.py"):
        results.finetune_judge_runs(pretrain_epochs=12)


def test_the_shipped_judge_holds_three_seeds_of_both_encoders_at_the_chapters_budget():
    curves = mt.lab.finetune_judge_runs()  # what chapter 7 draws
    for encoder in ("MAE", "from scratch"):
        assert sorted(curves[encoder]) == [0, 1, 2]
        assert all(len(c) == 30 for c in curves[encoder].values())


def test_results_keys_are_written_and_read_by_one_rule(tmp_path, monkeypatch):
    """The benchmarks write their keys with judge_key and choice_key; the chapters read
    them back through finetune_judge_runs and dataset_choice_runs."""
    import json

    from mae_tutorial.lab import results

    key = results.judge_key("synthetic", 18, 2, "MAE, mask0.9", "30 epochs at 0.01")
    assert key == "synthetic/18/2/MAE, mask0.9/30 epochs at 0.01"
    assert results.split_judge_key(key) == ("synthetic", 18, 2, "MAE, mask0.9",
                                            "30 epochs at 0.01")
    assert results.choice_key("synthetic", 1, "frozen") == "synthetic/1/frozen"
    assert results.choice_key("patterns", 0, "finetune", 18) == "patterns/0/finetune/18 epochs"
    for fields in (("synthetic", 1, "frozen", 6), ("patterns", 0, "finetune", 18)):
        assert results.split_choice_key(results.choice_key(*fields)) == fields
    assert results.frozen_key("synthetic", 2) == "synthetic/6/2"
    row = {"MAE": {"knn": 30.0, "linear_probe": 50.0}}
    runs = {results.choice_key("synthetic", s, "frozen", e): row | {"seed": s, "epochs": e}
            for s in (2, 0, 1) for e in (6, 18)}
    runs[results.choice_key("patterns", 0, "frozen")] = row
    (tmp_path / "dataset_choice.json").write_text(json.dumps({"runs": runs}))
    monkeypatch.setattr(results, "RESULTS", tmp_path)
    long = results.dataset_choice_runs("synthetic", 18)
    assert list(long) == [0, 1, 2] and {r["epochs"] for r in long.values()} == {18}
    assert [r["seed"] for r in long.values()] == [0, 1, 2]
    assert list(results.dataset_choice_runs("patterns")) == [0]
    with pytest.raises(KeyError, match="no finetune run of synthetic.*dataset_choice.py"):
        results.dataset_choice_runs(measure="finetune")
    frozen = {results.frozen_key("synthetic", s): {"seed": s} for s in (2, 0, 1)}
    frozen[results.frozen_key("synthetic", 0, 18)] = {"seed": "long"}
    (tmp_path / "frozen_features.json").write_text(json.dumps({"runs": frozen}))
    assert list(results.frozen_features_runs("synthetic").items()) == [
        (s, {"seed": s}) for s in (0, 1, 2)]
    assert results.frozen_features_runs("synthetic", 18) == {0: {"seed": "long"}}
    with pytest.raises(KeyError, match="no run of patterns.*frozen_features.py"):
        results.frozen_features_runs("patterns")


def test_representation_runs_group_one_part_by_encoder_then_seed(tmp_path, monkeypatch):
    import json

    from mae_tutorial.lab import results

    assert results.representation_key("frozen", "MoCo v3", 1) == "frozen/MoCo v3/1"
    runs = {results.representation_key(part, encoder, seed): {"part": part, "seed": seed}
            for part in ("frozen", "partial") for encoder in ("MAE", "MoCo v3")
            for seed in (2, 0, 1)}
    (tmp_path / "representation.json").write_text(json.dumps({"runs": runs}))
    monkeypatch.setattr(results, "RESULTS", tmp_path)
    frozen = results.representation_runs("frozen")
    assert list(frozen) == ["MAE", "MoCo v3"]  # the benchmark's order
    assert list(frozen["MoCo v3"]) == [0, 1, 2]  # seeds sorted
    assert {r["part"] for by_seed in frozen.values() for r in by_seed.values()} == {"frozen"}
    with pytest.raises(KeyError, match="no 'layers' runs.*--only layers"):
        results.representation_runs("layers")
