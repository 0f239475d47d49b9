import dataclasses
import subprocess
import sys

import pytest

import mae_tutorial as mt
from mae_tutorial import runs
from mae_tutorial.train import CHECKPOINT

SMALL = dict(synthetic_size=256, batch_size=32, max_steps=3, checkpoint_every=1, log_every=1)


def test_trains_once_then_loads_the_same_model(tmp_path, capsys):
    model, run = runs.pretrain_once("quick", cache=tmp_path, **SMALL)
    assert "3 steps on synthetic" in capsys.readouterr().out
    assert (run / CHECKPOINT).exists() and len(mt.train.read_metrics(run)) == 3
    again, run_again = runs.pretrain_once("quick", cache=tmp_path, **SMALL)
    assert "loaded from" in capsys.readouterr().out and run_again == run
    assert not again.training
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values(),
                            strict=True):
        assert a.equal(b), name


def test_a_changed_setting_trains_anew_and_replaces_the_stale_run(tmp_path, capsys):
    _, first = runs.pretrain_once("quick", cache=tmp_path, **SMALL)
    _, second = runs.pretrain_once("quick", cache=tmp_path, **{**SMALL, "max_steps": 2})
    assert second != first and "2 steps" in capsys.readouterr().out
    assert first.exists() and second.exists()  # other settings: both kept
    # where and how a run is shown is not part of its key
    cfg = mt.config.config_from_preset("quick", **SMALL)
    shown = mt.config.config_from_preset("quick", **{**SMALL, "output_dir": "elsewhere",
                                                     "log_every": 3})
    assert runs.run_key(cfg) == runs.run_key(shown)
    assert runs.run_key(cfg) != runs.run_key(mt.config.config_from_preset(
        "quick", **{**SMALL, "mask_ratio": 0.5}))


def test_a_changed_package_trains_anew_and_removes_the_stale_run(tmp_path, monkeypatch):
    cfg = mt.config.config_from_preset("quick", **SMALL)
    _, old = runs.pretrain_once("quick", cache=tmp_path / "cache", **SMALL)
    # another process is training the same settings with yet other code: left alone
    busy = tmp_path / "cache" / f"{old.name.rsplit('-', 1)[0]}-0123456789.partial"
    busy.mkdir()
    fake = tmp_path / "pkg"
    fake.mkdir()
    (fake / "viz.py").write_text("# figures only: no run executes this module\n")
    before = runs.run_key(cfg)
    monkeypatch.setattr(runs, "__file__", str(fake / "runs.py"))
    assert runs.run_key(cfg) != before  # the training modules are gone from this fake
    (fake / "train.py").write_text("# another version of the training loop\n")
    after = runs.run_key(cfg)
    (fake / "viz.py").write_text("# other figures\n")
    assert runs.run_key(cfg) == after  # a module runs don't execute is not in the key
    assert after != before and after.split("-")[0] == before.split("-")[0]  # same settings
    _, new = runs.pretrain_once("quick", cache=tmp_path / "cache", **SMALL)
    assert new != old and new.exists() and not old.exists()
    assert not (tmp_path / "cache" / f"{old.name}.lock").exists()
    assert busy.exists()


def test_two_processes_asking_at_once_train_once(tmp_path):
    code = (f"import mae_tutorial as mt; mt.runs.pretrain_once('quick', cache=r'{tmp_path}', "
            "synthetic_size=256, batch_size=32, max_steps=3)")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted("loaded from" in out for out in outputs) == [False, True], outputs
    assert len([d for d in tmp_path.iterdir() if d.is_dir()]) == 1


def test_an_interrupted_run_is_continued_not_taken_as_finished(tmp_path, capsys):
    cfg = mt.config.config_from_preset("quick", progress=False, **SMALL)
    key = f"quick-{runs.run_key(cfg)}"
    partial = tmp_path / f"{key}.partial"
    mt.train.train(dataclasses.replace(cfg, output_dir=str(partial), stop_after=2))
    _, run = runs.pretrain_once("quick", cache=tmp_path, **SMALL)
    assert run == tmp_path / key and not partial.exists()
    steps = [m["step"] for m in mt.train.read_metrics(run)]
    assert steps == [1, 2, 3]  # steps 1-2 from the interrupted session, 3 from the resume
    assert "3 steps" in capsys.readouterr().out


def test_unknown_preset_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown preset"):
        runs.pretrain_once("medium", cache=tmp_path)


def test_book_model_needs_a_known_budget():
    with pytest.raises(ValueError, match="budget must be"):
        runs.book_model("medium")


def test_a_fine_tuning_is_computed_once_per_settings_and_data(tmp_path, monkeypatch, capsys):
    model, run = runs.pretrain_once("quick", cache=tmp_path, **SMALL)
    data = mt.data.load_dataset("synthetic", synthetic_size=128)
    test = mt.data.load_dataset("synthetic", synthetic_size=64, seed=5)
    calls = []
    real = runs.finetune

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(runs, "finetune", counting)
    first = runs.finetune_once(run, data, test, model, epochs=1, batch_size=32)
    again = runs.finetune_once(run, data, test, model, epochs=1, batch_size=32)
    assert again == first and len(calls) == 1 and "loaded from" in capsys.readouterr().out
    explicit = runs.finetune_once(run, data, test, model, epochs=1, batch_size=32,
                                  pretrained=True, seed=0)  # the defaults, passed
    assert explicit == first and len(calls) == 1
    assert 0 <= first["accuracy"] <= 100 and first["steps"] == 4
    runs.finetune_once(run, data, test, model, epochs=1, batch_size=64)  # other settings
    other = mt.data.load_dataset("synthetic", synthetic_size=128, seed=3)
    runs.finetune_once(run, other, test, model, epochs=1, batch_size=32)  # other data
    assert len(calls) == 3 and len(list(run.glob("finetune-*.json"))) == 3
    assert not list(run.glob("*.tmp"))


def test_project_files_come_from_the_checkout(monkeypatch):
    text = runs.project_file("benchmarks/results/gpu_check_h200.log")
    assert "NVIDIA H200" in text
    monkeypatch.setattr(runs, "REPOSITORY_URL", "http://127.0.0.1:9/none")  # nothing listens
    with pytest.raises(FileNotFoundError, match="neither in a checkout"):
        runs.project_file("benchmarks/results/no_such_file.json")
