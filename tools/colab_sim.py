"""Run the book's notebooks the way a Colab reader does, on this machine.

    python tools/colab_sim.py                         # every chapter in _toc.yml
    python tools/colab_sim.py book/02_patches_and_masking.ipynb ...

What a reader who opens a chapter from its Colab badge gets, as far as a CPU machine offline
can have it:
- Colab's packages: a fresh virtual environment with the versions Colab's image lists for the
  packages the book touches (`tools/colab/constraints.txt`, with its source and date; ipywidgets
  7.7.1, IPython 7), and this machine's torch and torchvision;
- a Colab runtime: `google.colab` imported in every process of that environment, its
  `drive.mount` failing (on Colab it waits for a sign-in), and no network except this machine
  (`tools/colab/site/`);
- no checkout: each notebook is copied alone into an empty folder and run there in its own
  kernel, and the package is not installed until the notebook's setup cell installs it
  (`MAE_TUTORIAL_PIP` points that cell at a wheel of this checkout, not at GitHub);
- every cell in order, to the end ("Run all").

It may reuse the models the book build trained (`--cache`, default `book/runs/cache`): it tests
the code paths of Colab's environment, not Colab's speed. Prints one line per notebook and
exits 1 if any notebook stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / "colab"
CONSTRAINTS = HERE / "constraints.txt"
DEFAULT_VENV = ROOT / "_build" / "colab" / "venv"


def requirements() -> list[str]:
    """What the simulation installs: the constraints file's pins, plus this machine's torch
    and torchvision."""
    pins = [line.split("#")[0].strip() for line in CONSTRAINTS.read_text().splitlines()]
    torch = [f"{name}=={importlib.metadata.version(name).split('+')[0]}"
             for name in ("torch", "torchvision")]
    return [p for p in pins if p] + torch


def ensure_venv(venv: Path = DEFAULT_VENV) -> Path:
    """The simulation's Python (made, or remade when its requirements or stand-ins changed)."""
    python = venv / "bin" / "python"
    stamp = venv / "colab-sim.stamp"
    wanted = hashlib.sha256("\n".join(requirements()).encode())
    for path in sorted((HERE / "site").rglob("*.py")):
        wanted.update(path.read_bytes())
    if python.exists() and stamp.exists() and stamp.read_text() == wanted.hexdigest():
        return python
    print(f"making the Colab environment in {venv} (Colab's package versions)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *requirements()], check=True)
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    shutil.copytree(HERE / "site", site, dirs_exist_ok=True)
    stamp.write_text(wanted.hexdigest())
    return python


def build_wheel(into: Path) -> Path:
    """A wheel of this checkout, what `pip install git+<repository>` would build on Colab."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(into), str(ROOT)], check=True)
    return next(into.glob("mae_tutorial-*.whl"))


def chapters() -> list[Path]:
    """The notebooks of the table of contents, in its order."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    return [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").exists()]


def run_notebook(python: Path, notebook: Path, workdir: Path, wheel: Path, cache: Path,
                 timeout: int = 600) -> tuple[bool, str]:
    """Run one notebook as a fresh Colab runtime would: copied alone into `workdir`, the
    package uninstalled first, a clean environment. Returns (passed, the executor's line)."""
    workdir.mkdir(parents=True, exist_ok=True)
    copy = workdir / notebook.name
    shutil.copy(notebook, copy)
    subprocess.run([str(python), "-m", "pip", "uninstall", "-y", "-q", "mae-tutorial"],
                   capture_output=True)
    env = {"PATH": f"{python.parent}{os.pathsep}/usr/bin:/bin", "HOME": str(workdir),
           "LANG": os.environ.get("LANG", "C.UTF-8"), "PYTHONUNBUFFERED": "1",
           "MAE_TUTORIAL_PIP": f"mae-tutorial @ {wheel.as_uri()}",
           "MAE_RUNS_CACHE": str(cache), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "MPLCONFIGDIR": str(python.parents[1] / "matplotlib")}  # a font cache, as on Colab
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TMPDIR", "ATEN_CPU_CAPABILITY",
                 "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS",  # how to run, not what
                 "MAE_TUTORIAL_CPU_BF16"):
        if name in os.environ:
            env[name] = os.environ[name]
    done = subprocess.run([str(python), str(HERE / "execute.py"), str(copy), "--timeout",
                           str(timeout)], cwd=workdir, env=env, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    line = lines[-1] if lines else f"failed: {done.stderr.strip()[-500:]}"
    return done.returncode == 0, line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapter")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--cache", type=Path, default=ROOT / "book" / "runs" / "cache",
                        help="the pre-trained models to reuse (MAE_RUNS_CACHE)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    python = ensure_venv(args.venv)
    version = subprocess.run([str(python), "-c", "import ipywidgets, torch, sys; print("
                              "f'ipywidgets {ipywidgets.__version__}, torch {torch.__version__},"
                              " Python {sys.version.split()[0]}')"],
                             capture_output=True, text=True).stdout.strip()
    print(f"Colab simulation: {version}, no network, google.colab stand-in", flush=True)
    failed = []
    with tempfile.TemporaryDirectory(prefix="colab-sim-") as tmp:
        wheel = build_wheel(Path(tmp) / "wheel")
        for notebook in args.notebooks or chapters():
            notebook = notebook.resolve()
            passed, line = run_notebook(python, notebook, Path(tmp) / notebook.stem, wheel,
                                        args.cache.resolve(), args.timeout)
            print(f"{notebook.name:<36} {line}", flush=True)
            if not passed:
                failed.append(notebook.name)
    if failed:
        print(f"{len(failed)} notebook(s) stopped under the Colab simulation: "
              f"{', '.join(failed)}")
        return 1
    print("every notebook ran to its end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
