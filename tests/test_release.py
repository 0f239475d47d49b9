"""What a reader's Colab badge and a release depend on: one version in pyproject.toml,
_config.yml and every setup cell; the install that setup cell runs (and what it says when it
fails); a T4 runtime for every chapter that trains; and the chapter timings the book ships,
measured on the notebooks as they are."""

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import mae_tutorial as mt

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
# code that trains or fine-tunes a model, or times its training step
TRAINS = re.compile(r"\.backward\(|mt\.train\.train\(|"
                    r"mt\.lab\.(book_model|contrastive_once|finetune_once|ablations|speed)")


def pyproject_version() -> str:
    return re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(),
                     re.M).group(1)


def setup_cell(path: Path) -> str:
    return "".join(json.loads(path.read_text())["cells"][1]["source"])


def install_block(path: Path) -> str:
    source = setup_cell(path)
    end = 'cell again")\n'
    return source[:source.index(end) + len(end)]


def test_one_version_in_pyproject_config_cells_and_package():
    version = pyproject_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    config = (ROOT / "_config.yml").read_text()
    assert re.search(r'^    release: "([^"]+)"', config, re.M).group(1) == version
    for path in NOTEBOOKS:
        assert f'VERSION = "{version}"' in setup_cell(path), f"{path.name}: {version}"
    # as installed (editable here): `pip install -e .` again after changing the version
    assert mt.__version__ == version


def test_the_package_finds_its_version_without_an_installation(monkeypatch):
    import importlib.metadata

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert mt._version() == pyproject_version()  # read from the checkout's pyproject.toml


class Pip:
    """subprocess.run for the setup cell: answers each pip call with `outcomes` in turn."""

    def __init__(self, *outcomes: tuple[int, str]):
        self.outcomes, self.installed = list(outcomes), []

    def __call__(self, args, **kwargs):
        self.installed.append(args[-1])
        code, stderr = self.outcomes.pop(0)
        return types.SimpleNamespace(returncode=code, stdout="", stderr=stderr)


def run_install(monkeypatch, pip: Pip, override: str | None = None) -> None:
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", pip)
    if override is None:
        monkeypatch.delenv("MAE_TUTORIAL_PIP", raising=False)
    else:
        monkeypatch.setenv("MAE_TUTORIAL_PIP", override)
    exec(install_block(NOTEBOOKS[0]), {})


def test_the_setup_cell_installs_the_books_version_from_pypi_then_from_its_tag(monkeypatch):
    version = pyproject_version()
    repo = re.search(r"^repository:\n\s+url: (\S+)", (ROOT / "_config.yml").read_text(),
                     re.M).group(1)
    pypi, tag = f"mae-tutorial=={version}", f"mae-tutorial @ git+{repo}@v{version}"
    pip = Pip((0, ""))
    run_install(monkeypatch, pip)
    assert pip.installed == [pypi]
    pip = Pip((1, "No matching distribution found"), (0, ""))
    run_install(monkeypatch, pip)
    assert pip.installed == [pypi, tag]
    pip = Pip((0, ""))  # the Colab simulation's wheel (tools/colab_sim.py)
    run_install(monkeypatch, pip, override="mae-tutorial @ file:///tmp/w.whl")
    assert pip.installed == ["mae-tutorial @ file:///tmp/w.whl"]


@pytest.mark.parametrize("stderr, cause", [
    ("ERROR: No matching distribution found for mae-tutorial\n"
     "fatal: Remote branch v0.1.0 not found in upstream origin", "may not be published yet"),
    ("fatal: unable to access: Could not resolve host: github.com", "seems to be offline"),
])
def test_a_failed_install_names_what_it_tried_and_the_likely_cause(monkeypatch, capsys,
                                                                    stderr, cause):
    with pytest.raises(RuntimeError) as failed:
        run_install(monkeypatch, Pip((1, stderr), (1, stderr)))
    message = str(failed.value)
    assert f"mae-tutorial=={pyproject_version()} nor mae-tutorial @ git+" in message
    assert cause in message and "run this cell again" in message
    assert stderr in capsys.readouterr().out  # pip's own words are shown


def test_every_chapter_that_trains_opens_a_t4_on_colab():
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
        meta = nb["metadata"]
        if TRAINS.search(code):
            assert meta.get("accelerator") == "GPU", f"{path.name}: no GPU runtime on Colab"
            assert meta.get("colab", {}).get("gpuType") == "T4", path.name
        else:  # a GPU it does not use would only spend the reader's quota
            assert "accelerator" not in meta, f"{path.name} trains nothing"


def test_the_shipped_chapter_timings_were_measured_on_these_notebooks():
    """mae_tutorial/results/book_cpu.json holds every chapter's time; book_cpu_code.json
    beside it, the hash of each chapter's code when that was recorded
    (benchmarks/gpu_book.py writes both). A chapter changed since then fails here: measure
    the book again (README, "Chapter timings")."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu_book
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    results = ROOT / "mae_tutorial" / "results"
    record = gpu_book.code_log(results / "book_cpu.json")
    if not record.exists():  # the log predates the record: armed by the next timing run
        pytest.skip("book_cpu.json was measured before its code record existed; "
                    "benchmarks/gpu_book.py writes both (README, 'Chapter timings')")
    recorded = json.loads(record.read_text())
    timed = {r["chapter"] for r in json.loads((results / "book_cpu.json").read_text())
             ["chapters"]}
    assert set(recorded["code"]) == timed
    changed = sorted(n for n, h in recorded["code"].items() if gpu_book.code_hash(n) != h)
    assert not changed, (f"changed since their timings were recorded: {changed}; run the "
                         "book again (README, 'Chapter timings')")
