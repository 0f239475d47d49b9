"""tools/colab_sim.py runs a notebook as a Colab reader does (Colab's package versions, a
google.colab that cannot mount Drive, no network, no checkout). Here it runs small notebooks made
of a chapter's real setup cell and one more cell: it must pass a clean one and stop on each
defect that would stop a reader on Colab. The first run makes the simulation's environment
(a few minutes); later runs reuse it."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import colab_sim  # noqa: E402


@pytest.fixture(scope="module")
def simulate(tmp_path_factory):
    python, _ = colab_sim.prepare()  # the environment the simulation made, if it did
    tmp = tmp_path_factory.mktemp("colab")
    wheel = colab_sim.build_wheel(tmp / "wheel")
    setup = json.loads((ROOT / "book" / "02_patches_and_masking.ipynb").read_text())["cells"][1]

    def run(name: str, code: str) -> tuple[bool, str]:
        cell = {"cell_type": "code", "execution_count": None, "id": "defect", "metadata": {},
                "outputs": [], "source": code}
        notebook = tmp / "book" / f"{name}.ipynb"
        notebook.parent.mkdir(exist_ok=True)
        notebook.write_text(json.dumps({"cells": [setup, cell], "metadata": {},
                                        "nbformat": 4, "nbformat_minor": 5}))
        return colab_sim.run_notebook(python, notebook, tmp / name, wheel, tmp / "cache",
                                      timeout=300)

    return run


def test_a_clean_notebook_installs_the_package_from_its_setup_cell_and_runs(simulate):
    passed, line = simulate("clean", "import ipywidgets, sys\n"
                                     "assert ipywidgets.__version__ == '7.7.1'\n"
                                     "assert 'site-packages' in mt.__file__  # not a checkout\n"
                                     "mt.viz.frame_slider({'a': torch.zeros(3, 4, 4)})")
    assert passed, line
    assert line.startswith("ok")


def test_an_ipywidgets_8_only_call_stops_it(simulate):
    passed, line = simulate("stack", "import ipywidgets as widgets\n"
                                     "widgets.Stack([widgets.Label('a')])")
    assert not passed and "AttributeError" in line and "Stack" in line, line


def test_a_drive_mount_outside_the_opt_in_cell_stops_it(simulate):
    passed, line = simulate("drive", "from google.colab import drive\n"
                                     "drive.mount('/content/drive')")
    assert not passed and "drive.mount" in line, line


def test_a_fetch_of_a_repository_file_stops_it(simulate):
    url = ("https://raw.githubusercontent.com/mae-tutorial/mae-tutorial/main/"
           "mae_tutorial/results/ablations.json")
    passed, line = simulate("fetch", f"import urllib.request\nurllib.request.urlopen({url!r})")
    assert not passed and "no network" in line, line


# Which Python, torch and precision the simulation runs: pure functions, no environment made.

HERE = ("/usr/bin/python3", "3.11.7")
MACHINE = ("torch==2.14.1", "torchvision==0.29.1")


def test_it_looks_for_python_3_13_on_path_then_under_pyenv_newest_first(tmp_path):
    for version in ("3.12.1", "3.13.0", "3.13.2", "3.13.1t", "3.13-dev"):
        bin_dir = tmp_path / "versions" / version / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "python3.13").touch()
    found = colab_sim.python_candidates(lambda name: f"/usr/bin/{name}", tmp_path)
    assert found == ["/usr/bin/python3.13", str(tmp_path / "versions/3.13.2/bin/python3.13"),
                     str(tmp_path / "versions/3.13.0/bin/python3.13")]
    assert colab_sim.python_candidates(lambda name: None, tmp_path / "none") == []


def test_it_runs_the_first_usable_python_3_13_with_colabs_torch():
    runtime = colab_sim.choose_runtime(
        [("/root/.pyenv/shims/python3.13", None), ("/opt/py/bin/python3.12", "3.12.1"),
         ("/opt/py313/bin/python3.13", "3.13.0")], HERE, MACHINE)
    assert (runtime.python, runtime.version) == ("/opt/py313/bin/python3.13", "3.13.0")
    assert runtime.colab_python and runtime.torch == colab_sim.COLAB_TORCH
    assert "Colab's Python 3.13" in runtime.why_python
    assert colab_sim.COLAB_TORCH == ("torch==2.11.0", "torchvision==0.26.0")


def test_without_python_3_13_it_runs_this_machines_and_says_what_it_looked_for():
    runtime = colab_sim.choose_runtime([("/root/.pyenv/shims/python3.13", None)], HERE, MACHINE)
    assert (runtime.python, runtime.version) == HERE and not runtime.colab_python
    assert runtime.torch == colab_sim.COLAB_TORCH  # still Colab's torch, for this Python
    assert "no Python 3.13" in runtime.why_python
    assert "/root/.pyenv/shims/python3.13 (unusable)" in runtime.why_python
    here_313 = ("/usr/bin/python3.13", "3.13.1")
    assert colab_sim.choose_runtime([], here_313, MACHINE).python == here_313[0]


def test_machine_runtime_and_the_fallback_run_this_machines_python_and_torch():
    machine = colab_sim.choose_runtime([("/x/python3.13", "3.13.0")], HERE, MACHINE, "machine")
    assert (machine.python, machine.version, machine.torch) == (*HERE, MACHINE)
    failed = colab_sim.choose_runtime([("/x/python3.13", "3.13.0")], HERE, MACHINE)
    backup = colab_sim.fallback(failed, HERE, MACHINE, "No matching distribution found")
    assert (backup.python, backup.version, backup.torch) == (*HERE, MACHINE)
    assert "torch==2.11.0" in backup.why_python and "3.13.0" in backup.why_python
    assert "No matching distribution found" in backup.why_torch
    with pytest.raises(ValueError):
        colab_sim.choose_runtime([], HERE, MACHINE, "gpu")


def test_requirements_are_the_pins_and_the_runtimes_torch_one_tifffile_per_python():
    from packaging.requirements import Requirement

    runtime = colab_sim.choose_runtime([("/x/python3.13", "3.13.0")], HERE, MACHINE)
    wanted = colab_sim.requirements(runtime)
    assert wanted[-2:] == list(colab_sim.COLAB_TORCH) and "ipywidgets==7.7.1" in wanted
    for python in ("3.11", "3.13"):
        tifffile = [r for r in map(Requirement, wanted) if r.name == "tifffile"
                    and (r.marker is None or r.marker.evaluate({"python_version": python}))]
        assert len(tifffile) == 1, (python, tifffile)


def test_every_notebook_trains_in_fp32_as_on_colab_unless_the_machine_runtime_is_asked(tmp_path):
    python = tmp_path / "venv" / "bin" / "python"
    environ = {"MAE_TUTORIAL_CPU_BF16": "1", "OMP_NUM_THREADS": "2", "GITHUB_TOKEN": "x"}
    env = colab_sim.notebook_env(python, tmp_path, tmp_path / "w.whl", tmp_path, environ)
    assert env["MAE_TUTORIAL_CPU_BF16"] == "0" and env["OMP_NUM_THREADS"] == "2"
    assert "GITHUB_TOKEN" not in env
    env = colab_sim.notebook_env(python, tmp_path, tmp_path / "w.whl", tmp_path, environ,
                                 colab_precision=False)
    assert env["MAE_TUTORIAL_CPU_BF16"] == "1"
    assert "MAE_TUTORIAL_CPU_BF16" not in colab_sim.notebook_env(
        python, tmp_path, tmp_path / "w.whl", tmp_path, {}, colab_precision=False)


def test_the_summary_names_python_torch_and_precision_and_why():
    runtime = colab_sim.choose_runtime([], HERE, MACHINE)
    text = colab_sim.summary(runtime, {"python": "3.11.7", "torch": "2.11.0+cu130",
                                       "torchvision": "0.26.0+cu130", "ipywidgets": "7.7.1"})
    assert "Python 3.11.7 (/usr/bin/python3): no Python 3.13" in text
    assert "torch 2.11.0+cu130, torchvision 0.26.0+cu130: Colab's" in text
    assert "precision: fp32 (MAE_TUTORIAL_CPU_BF16=0" in text


# The check of a T4's precision path (tools/colab/fp16_check.py), in this process with this
# machine's torch: a few steps of a tiny configuration, fp32 and fp16 with a gradient scaler.

def _fp16_check():
    import importlib.util

    spec = importlib.util.spec_from_file_location("fp16_check",
                                                  ROOT / "tools" / "colab" / "fp16_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fp16_check"] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


fp16_check = _fp16_check()
TINY = {"synthetic_size": 32, "batch_size": 8}  # the quick preset's model, 4 steps an epoch


@pytest.fixture(scope="module")
def fp16_traces():
    from mae_tutorial.config import config_from_preset

    return [fp16_check.trace(config_from_preset("quick", amp=amp, **TINY), 3)
            for amp in ("off", "fp16")]


def test_the_fp16_check_trains_in_float16_with_an_enabled_scaler(fp16_traces):
    import math

    assert fp16_check.cpu_scaler_problem() is None  # torch.amp.GradScaler("cpu") works here
    fp32, fp16 = fp16_traces
    assert (fp32.amp_dtype, fp32.scaler_enabled) == (None, False)
    assert (fp16.amp_dtype, fp16.scaler_enabled) == ("float16", True)
    assert fp16.scales[-1] > 1 and fp32.scales == [1.0] * 3
    assert len(fp16.losses) == 3 and all(math.isfinite(v) for v in fp16.losses + fp32.losses)
    # one seed: the same weights, batch and masks, so the first losses differ by fp16 alone
    assert fp16.losses[0] != fp32.losses[0]
    assert abs(fp16.losses[0] - fp32.losses[0]) < 1e-2 * fp32.losses[0]
    assert fp16.total == 24  # 6 epochs of 4 steps
    report = fp16_check.compare(fp32, fp16, tolerance=0.05)
    assert (report["autocast_dtype"], report["scaler_enabled"], report["steps"]) == (
        "float16", True, 3)
    assert report["max_rel_diff"] < 0.05 and report["fp16_loss"][0] == round(fp16.losses[0], 6)
    assert not [f for f in report["failures"] if "fp16" in f or "scaler" in f], report


def test_the_fp16_check_reports_a_nan_a_disabled_scaler_skips_and_a_flat_loss(fp16_traces):
    from dataclasses import replace

    fp32 = replace(fp16_traces[0], losses=[1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    good = replace(fp16_traces[1], losses=[1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.401], skipped=[0])
    assert fp16_check.compare(fp32, good)["failures"] == []

    def failures(**changes):
        return " | ".join(fp16_check.compare(fp32, replace(good, **changes))["failures"])

    assert "not finite at step(s) [3]" in failures(losses=[1.0, 0.9, 0.8, float("nan"), 0.6,
                                                           0.5, 0.4])
    assert "scaler was not enabled" in failures(scaler_enabled=False)
    assert "in fp32, not float16" in failures(amp_dtype=None)
    assert "skipped 4 steps" in failures(skipped=[0, 1, 2, 3, 4, 5])
    assert "fell by 0.0%" in failures(losses=[1.0] * 7)
    assert "bit for bit" in failures(losses=list(fp32.losses))  # autocast did nothing
    assert "differ by 25.00%" in failures(losses=[1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.5])


def test_a_torch_without_a_cpu_grad_scaler_fails_the_check_and_says_so(monkeypatch):
    class NoCpuScaler:
        def __init__(self, device: str) -> None:
            raise RuntimeError(f"GradScaler is not supported on {device}")

    monkeypatch.setattr(fp16_check.torch.amp, "GradScaler", NoCpuScaler)
    report = fp16_check.check(2, run=lambda cfg, steps: pytest.fail("it ran"))
    assert len(report["failures"]) == 1
    assert "cannot make a GradScaler for the CPU" in report["failures"][0]
    assert "not supported on cpu" in report["failures"][0]


def test_the_shipped_fp16_run_is_reported_in_one_line(tmp_path):
    run = {"steps": 936, "skipped_steps": 2, "final_loss": 0.34}
    log = {"date": "2026-12-07", "machine": "a CPU",
           "runs": {"fp16": run, "off": run | {"skipped_steps": None, "final_loss": 0.338}},
           "chapters": [{"chapter": "intro"}, {"chapter": "07_evaluation"}]}
    path = tmp_path / "fp16_quick.json"
    path.write_text(json.dumps(log))
    line = colab_sim.fp16_quick_line(path)
    assert "936 steps, 2 skipped, final loss 0.34 (fp32 0.338)" in line
    assert line.endswith("every assert held in intro, 07_evaluation")
    log["chapters"][1]["error"] = "AssertionError"
    path.write_text(json.dumps(log))
    assert colab_sim.fp16_quick_line(path).endswith("STOPPED in 07_evaluation")
    missing = colab_sim.ROOT / "mae_tutorial" / "results" / "absent.json"
    assert "never checked" in colab_sim.fp16_quick_line(missing)
