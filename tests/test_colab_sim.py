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
    python = colab_sim.ensure_venv()
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
