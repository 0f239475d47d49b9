"""Run the book's notebooks the way a Colab reader does, on this machine.

    python tools/colab_sim.py                         # every chapter in _toc.yml
    python tools/colab_sim.py book/02_patches_and_masking.ipynb ...
    python tools/colab_sim.py --no-fp16                # without the fp16 check (below)

What a reader who opens a chapter from its Colab badge gets, as far as a CPU machine offline
can have it:
- Colab's Python and packages: a fresh virtual environment made with Python 3.13 where this
  machine has it (`python3.13` on PATH or under pyenv; else this machine's Python, and it says
  so), the versions Colab's image lists for the packages the book touches
  (`tools/colab/constraints.txt`, with its source and date; ipywidgets 7.7.1, IPython 7), and
  Colab's torch 2.11.0 and torchvision 0.26.0 from PyPI (if pip cannot install them, this
  machine's Python, torch and torchvision instead, and it says why);
- Colab's precision on a CPU: fp32 (`MAE_TUTORIAL_CPU_BF16=0`, even on a CPU with native bf16,
  where the book build trains in bf16);
- a Colab runtime: `google.colab` imported in every process of that environment, its
  `drive.mount` failing (on Colab it waits for a sign-in), and no network except this machine
  (`tools/colab/site/`);
- no checkout: each notebook is copied alone into an empty folder and run there in its own
  kernel, and the package is not installed until the notebook's setup cell installs it
  (`MAE_TUTORIAL_PIP` points that cell at a wheel of this checkout, not at GitHub);
- every cell in order, to the end ("Run all").

It shares the book build's model cache (`--cache`, default `book/runs/cache`), but a model is
keyed by torch's version and the precision, so under Colab's torch and fp32 it trains each
shared model once itself (`--runtime machine`: this machine's Python, torch and precision,
which reuse the build's models). It tests the code paths of Colab's environment, not Colab's
speed.

After the notebooks it checks the precision path of Colab's GPU, a T4, which has no bf16 in
hardware and so trains in fp16 autocast with a gradient scaler (`tools/colab/fp16_check.py`,
`--no-fp16` skips it): with the simulation's Python and torch, the package installed from the
wheel, it trains the first `--fp16-steps` steps (default 40) of the `quick` preset on the CPU
twice from one seed, in fp32 and in fp16 with the scaler, through the trainer's own `setup` and
`train_step`, and fails if the fp16 run has no float16 autocast or no scaler (a torch whose
GradScaler cannot run on a CPU says so), a loss that is not finite, steps the scaler keeps
skipping, a loss that does not fall, or a last loss off fp32's by more than its tolerance. What
it cannot reproduce, and says so: the chapters' asserts under fp16 (fp16 autocast on a CPU is
many times slower than fp32, 14x on a 2-core AMD EPYC: the whole quick pre-training would
take about 20 minutes there, and the check prints its estimate; benchmarks/fp16_quick.py ran
it once, with the chapters on its model, and the simulation prints that run's line), and the
T4's own fp16 kernels (CUDA's, not the CPU's).

Prints which Python, torch and precision ran and why, one line per notebook, the fp16 check's
result line, and exits 1 if any notebook stopped or the fp16 check failed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / "colab"
CONSTRAINTS = HERE / "constraints.txt"
DEFAULT_VENV = ROOT / "_build" / "colab" / "venv"
# Colab's image, as constraints.txt's source lists it: its Python, torch and torchvision.
COLAB_PYTHON = (3, 13)
COLAB_TORCH = ("torch==2.11.0", "torchvision==0.26.0")
FP16_CHECK = HERE / "fp16_check.py"
FP16_STEPS = 40  # 2 to 3.5 minutes of fp16 on a 2-core CPU (fp16_check.py's docstring)
# What every notebook's environment gets, as on Colab: a Colab CPU runtime trains in fp32, so
# the package is told this CPU has no native bf16 (mae_tutorial.optim.cpu_has_native_bf16).
COLAB_ENV = {"MAE_TUTORIAL_CPU_BF16": "0"}


@dataclass(frozen=True)
class Runtime:
    """The simulation's Python and torch, and why these."""

    python: str               # the interpreter the virtual environment is made from
    version: str              # its version, X.Y.Z
    torch: tuple[str, ...]    # torch and torchvision, as pip requirements
    why_python: str
    why_torch: str

    @property
    def colab_python(self) -> bool:
        return tuple(int(n) for n in self.version.split(".")[:2]) == COLAB_PYTHON


def machine_torch() -> tuple[str, ...]:
    """This machine's torch and torchvision (of the Python running this script), as pins."""
    return tuple(f"{name}=={importlib.metadata.version(name).split('+')[0]}"
                 for name in ("torch", "torchvision"))


def python_candidates(which: Callable[[str], str | None] = shutil.which,
                      pyenv_root: Path | None = None) -> list[str]:
    """Where Colab's Python may be on this machine: `python3.13` on PATH, then pyenv's 3.13
    builds, newest first (free-threaded and development builds left out). Unchecked: a
    pyenv shim on PATH may name a version that is not selected (`probe` tells)."""
    name = "python{}.{}".format(*COLAB_PYTHON)
    found = [p for p in [which(name)] if p]
    root = pyenv_root or Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    pattern = re.compile(r"{}\.{}\.(\d+)$".format(*COLAB_PYTHON))
    builds = [(int(m.group(1)), path) for path in root.glob(f"versions/*/bin/{name}")
              if (m := pattern.match(path.parents[1].name))]
    found += [str(path) for _, path in sorted(builds, reverse=True)]
    return list(dict.fromkeys(found))


def probe(python: str) -> str | None:
    """The version (X.Y.Z) of `python` if it runs and can make a virtual environment (a
    Debian python3.13 without python3.13-venv cannot), else None."""
    try:
        done = subprocess.run([python, "-c", "import ensurepip, sys, venv; "
                               "print('.'.join(map(str, sys.version_info[:3])))"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def choose_runtime(probed: list[tuple[str, str | None]], here: tuple[str, str],
                   machine: tuple[str, ...], runtime: str = "colab") -> Runtime:
    """The Python and torch to run (pure). `probed`: candidates for Colab's Python and their
    versions (None: unusable); `here`: this machine's Python and its version; `machine`: this
    machine's torch and torchvision pins. `runtime="machine"` takes this machine's Python and
    torch; `"colab"` takes the first probed Python of Colab's version (or this machine's, if
    it is one; else this machine's, saying what was looked for) and Colab's torch."""
    if runtime == "machine":
        return Runtime(*here, machine, "this machine's Python (--runtime machine)",
                       "this machine's torch and torchvision (--runtime machine)")
    if runtime != "colab":
        raise ValueError(f"runtime must be colab or machine, not {runtime!r}")
    wanted = "{}.{}".format(*COLAB_PYTHON)
    colab = [(path, version) for path, version in [here, *probed]
             if version and version.split(".")[:2] == wanted.split(".")]
    if colab:
        python, version = colab[0]
        how = "this script's Python" if colab[0] == here else "found on this machine"
        why_python = f"Colab's Python {wanted}, {how}"
    else:
        python, version = here
        looked = ", ".join(f"{path} ({'unusable' if v is None else v})" for path, v in probed)
        why_python = (f"no Python {wanted} here (python{wanted} on PATH and pyenv's builds; "
                      f"{looked or 'none found'}), so this machine's Python, not Colab's")
    return Runtime(python, version, COLAB_TORCH, why_python,
                   "Colab's torch and torchvision, from PyPI")


def fallback(failed: Runtime, here: tuple[str, str], machine: tuple[str, ...],
             error: str) -> Runtime:
    """What runs when pip cannot install `failed`'s torch: this machine's Python and torch."""
    return Runtime(*here, machine,
                   f"this machine's Python, since pip could not install {' '.join(failed.torch)}"
                   f" for Python {failed.version}",
                   f"this machine's torch and torchvision, not Colab's ({error})")


def requirements(runtime: Runtime | None = None) -> list[str]:
    """What the simulation installs: the constraints file's pins (some with a marker for the
    Python they apply to), plus the runtime's torch and torchvision (default: this
    machine's)."""
    pins = [line.split("#")[0].strip() for line in CONSTRAINTS.read_text().splitlines()]
    torch = machine_torch() if runtime is None else runtime.torch
    return [p for p in pins if p] + list(torch)


def ensure_venv(venv: Path = DEFAULT_VENV, runtime: Runtime | None = None) -> Path:
    """The simulation's Python (made from `runtime`'s Python, default this one with this
    machine's torch; remade when its Python, requirements or stand-ins changed). Raises
    CalledProcessError, with pip's output, if pip cannot install the requirements."""
    if runtime is None:
        runtime = choose_runtime([], (sys.executable, sys.version.split()[0]), machine_torch(),
                                 "machine")
    python = venv / "bin" / "python"
    stamp = venv / "colab-sim.stamp"
    wanted = hashlib.sha256("\n".join([runtime.python, runtime.version,
                                        *requirements(runtime)]).encode())
    for path in sorted((HERE / "site").rglob("*.py")):
        wanted.update(path.read_bytes())
    if python.exists() and stamp.exists() and stamp.read_text() == wanted.hexdigest():
        return python
    print(f"making the Colab environment in {venv} (Python {runtime.version}, "
          f"{' '.join(runtime.torch)}, Colab's package versions)", flush=True)
    start = time.perf_counter()
    subprocess.run([runtime.python, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *requirements(runtime)], check=True, capture_output=True, text=True)
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    shutil.copytree(HERE / "site", site, dirs_exist_ok=True)
    stamp.write_text(wanted.hexdigest())
    print(f"made in {time.perf_counter() - start:.0f} s", flush=True)
    return python


def prepare(venv: Path = DEFAULT_VENV, runtime: str = "colab") -> tuple[Path, Runtime]:
    """Choose the runtime (`choose_runtime`), make its environment, and fall back to this
    machine's Python and torch if pip cannot install Colab's torch. Returns (the
    environment's Python, the runtime that made it)."""
    here = (sys.executable, sys.version.split()[0])
    candidates = [] if runtime == "machine" else python_candidates()
    chosen = choose_runtime([(path, probe(path)) for path in candidates], here,
                            machine_torch(), runtime)
    try:
        return ensure_venv(venv, chosen), chosen
    except subprocess.CalledProcessError as error:
        if chosen.torch == machine_torch() and chosen.python == here[0]:
            raise
        output = (error.stderr or error.stdout or "").strip().splitlines()
        print("pip could not install Colab's runtime; its last lines:", *output[-5:],
              sep="\n  ", flush=True)
        reason = output[-1][:200] if output else f"pip exited {error.returncode}"
        backup = fallback(chosen, here, machine_torch(), reason)
        return ensure_venv(venv, backup), backup


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


def notebook_env(python: Path, workdir: Path, wheel: Path, cache: Path,
                 environ: dict[str, str] | None = None,
                 colab_precision: bool = True) -> dict[str, str]:
    """A notebook's environment, clean as a fresh Colab runtime's: from `environ` (default
    os.environ) only the variables that say how to run, not what, and Colab's precision
    (`COLAB_ENV`: fp32 on a CPU); `colab_precision=False` (`--runtime machine`) keeps this
    machine's (its `MAE_TUTORIAL_CPU_BF16`, if set)."""
    environ = os.environ if environ is None else environ
    env = {"PATH": f"{python.parent}{os.pathsep}/usr/bin:/bin", "HOME": str(workdir),
           "LANG": environ.get("LANG", "C.UTF-8"), "PYTHONUNBUFFERED": "1",
           "MAE_TUTORIAL_PIP": f"mae-tutorial @ {wheel.as_uri()}",
           "MAE_RUNS_CACHE": str(cache), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "MPLCONFIGDIR": str(python.parents[1] / "matplotlib")}  # a font cache, as on Colab
    passed = ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "TMPDIR", "ATEN_CPU_CAPABILITY",
              "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS"]
    for name in passed + ([] if colab_precision else list(COLAB_ENV)):
        if name in environ:
            env[name] = environ[name]
    if colab_precision:
        env.update(COLAB_ENV)
    return env


def run_notebook(python: Path, notebook: Path, workdir: Path, wheel: Path, cache: Path,
                 timeout: int = 600, colab_precision: bool = True) -> tuple[bool, str]:
    """Run one notebook as a fresh Colab runtime would: copied alone into `workdir`, the
    package uninstalled first, a clean environment (`notebook_env`). Returns (passed, the
    executor's line)."""
    workdir.mkdir(parents=True, exist_ok=True)
    copy = workdir / notebook.name
    shutil.copy(notebook, copy)
    subprocess.run([str(python), "-m", "pip", "uninstall", "-y", "-q", "mae-tutorial"],
                   capture_output=True)
    env = notebook_env(python, workdir, wheel, cache, colab_precision=colab_precision)
    done = subprocess.run([str(python), str(HERE / "execute.py"), str(copy), "--timeout",
                           str(timeout)], cwd=workdir, env=env, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    line = lines[-1] if lines else f"failed: {done.stderr.strip()[-500:]}"
    return done.returncode == 0, line


def run_fp16_check(python: Path, workdir: Path, wheel: Path, cache: Path,
                   steps: int = FP16_STEPS, timeout: int = 1800) -> tuple[bool, str]:
    """Run `fp16_check.py` with the simulation's Python, the package installed from `wheel`
    (not a checkout), in `workdir` with a notebook's clean environment. Returns (passed, its
    JSON line, followed by why it failed if it did)."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = notebook_env(python, workdir, wheel, cache)
    subprocess.run([str(python), "-m", "pip", "uninstall", "-y", "-q", "mae-tutorial"],
                   capture_output=True)
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps",
                              str(wheel)], env=env, capture_output=True, text=True)
    if install.returncode != 0:
        return False, f"could not install {wheel.name}: {install.stderr.strip()[-500:]}"
    try:
        done = subprocess.run([str(python), str(FP16_CHECK), "--steps", str(steps)],
                              cwd=workdir, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"did not finish in {timeout} s"
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    why = [line for line in done.stderr.splitlines() if line.startswith("fp16 check failed")]
    if done.returncode != 0 and not why:  # it crashed: the end of its traceback
        why = done.stderr.strip().splitlines()[-3:] or [f"exited {done.returncode}"]
    return done.returncode == 0, "\n".join(lines[-1:] + why)


FP16_NOT_REPRODUCED = (
    "not reproduced here: the chapters' asserts under fp16 (the whole quick pre-training in "
    "fp16 on this CPU: fp16_minutes_for_all above; run once instead, below), and the T4's own "
    "fp16 kernels (CUDA's, not the CPU's)")
FP16_QUICK = ROOT / "mae_tutorial" / "results" / "fp16_quick.json"


def fp16_quick_line(path: Path = FP16_QUICK) -> str:
    """The shipped run of the whole quick pre-training in fp16 with the chapters' asserts
    (benchmarks/fp16_quick.py, too slow for every CI run), in one line (pure but for reading
    `path`)."""
    if not path.exists():
        return (f"no {path.name}: the chapters under fp16 were never checked; run "
                "python benchmarks/fp16_quick.py --output " + str(path.relative_to(ROOT)))
    log = json.loads(path.read_text())
    fp16, fp32 = log["runs"]["fp16"], log["runs"]["off"]
    stopped = [r["chapter"] for r in log["chapters"] if "error" in r]
    chapters = ", ".join(r["chapter"] for r in log["chapters"])
    verdict = (f"STOPPED in {', '.join(stopped)}" if stopped else
               f"every assert held in {chapters}")
    return (f"measured once ({log['date']}, {log['machine']}; benchmarks/fp16_quick.py): the "
            f"whole quick pre-training in fp16 with the scaler, {fp16['steps']} steps, "
            f"{fp16['skipped_steps']} skipped, final loss {fp16['final_loss']} (fp32 "
            f"{fp32['final_loss']}), then the chapters on its model: {verdict}")


def summary(runtime: Runtime, ran: dict[str, str], colab_precision: bool = True) -> str:
    """What the simulation runs and why, as printed before the notebooks (pure). `ran`: the
    environment's versions of python, torch, torchvision and ipywidgets, as it reports them."""
    precision = ("fp32 (" + " ".join(f"{k}={v}" for k, v in COLAB_ENV.items()) +
                 " in every notebook), as on Colab's CPU runtime" if colab_precision else
                 "this machine's (bf16 on a CPU with native bf16, unless "
                 "MAE_TUTORIAL_CPU_BF16=0 is set)")
    return "\n".join([
        "Colab simulation:",
        f"  Python {ran.get('python', runtime.version)} ({runtime.python}): "
        f"{runtime.why_python}",
        f"  torch {ran.get('torch', '?')}, torchvision {ran.get('torchvision', '?')}: "
        f"{runtime.why_torch}",
        f"  precision: {precision}",
        f"  ipywidgets {ran.get('ipywidgets', '?')}; no network; google.colab stand-in"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapter")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--cache", type=Path, default=ROOT / "book" / "runs" / "cache",
                        help="the pre-trained models to reuse (MAE_RUNS_CACHE)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--runtime", choices=("colab", "machine"), default="colab",
                        help="colab (default): Python 3.13 where found, Colab's torch, fp32; "
                             "machine: this machine's Python, torch and precision (reuses "
                             "the build's models)")
    parser.add_argument("--no-fp16", action="store_true",
                        help="skip the check of the T4's fp16 path after the notebooks")
    parser.add_argument("--fp16-steps", type=int, default=FP16_STEPS,
                        help="steps of each run of the fp16 check")
    args = parser.parse_args(argv)
    python, runtime = prepare(args.venv, args.runtime)
    colab_precision = args.runtime == "colab"
    report = subprocess.run([str(python), "-c", "import ipywidgets, json, sys, torch, "
                             "torchvision; print(json.dumps({'python': sys.version.split()[0], "
                             "'torch': torch.__version__, 'torchvision': torchvision.__version__,"
                             " 'ipywidgets': ipywidgets.__version__}))"],
                            capture_output=True, text=True).stdout.strip()
    ran = json.loads(report) if report.startswith("{") else {}
    print(summary(runtime, ran, colab_precision), flush=True)
    failed = []
    with tempfile.TemporaryDirectory(prefix="colab-sim-") as tmp:
        wheel = build_wheel(Path(tmp) / "wheel")
        for notebook in args.notebooks or chapters():
            notebook = notebook.resolve()
            passed, line = run_notebook(python, notebook, Path(tmp) / notebook.stem, wheel,
                                        args.cache.resolve(), args.timeout, colab_precision)
            print(f"{notebook.name:<36} {line}", flush=True)
            if not passed:
                failed.append(notebook.name)
        fp16_passed = True
        if not args.no_fp16:
            print(f"fp16 check (a T4's precision path: {args.fp16_steps} steps of the quick "
                  "preset on this CPU, fp32 and fp16 with a gradient scaler)", flush=True)
            fp16_passed, line = run_fp16_check(python, Path(tmp) / "fp16", wheel,
                                               args.cache.resolve(), args.fp16_steps)
            print(f"  {'ok' if fp16_passed else 'failed'}:", line.replace("\n", "\n  "))
            print(f"  {FP16_NOT_REPRODUCED}", flush=True)
            print(f"  {fp16_quick_line()}", flush=True)
    if failed:
        print(f"{len(failed)} notebook(s) stopped under the Colab simulation: "
              f"{', '.join(failed)}")
    else:
        print("every notebook ran to its end")
    if not fp16_passed:
        print("the fp16 check of the T4's precision path failed (why above)")
    return 1 if failed or not fp16_passed else 0


if __name__ == "__main__":
    sys.exit(main())
