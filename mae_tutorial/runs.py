"""Pre-train once, use many times: the cached pre-training run that chapters share.

Chapters 5 to 9 look at the same quick MAE from different sides (its loss, its training, its
features). Each calls `pretrain_once("quick")`: the first call trains it, as
`python -m mae_tutorial.train --preset quick` would, and later calls load it. The cache key
hashes the run's settings, the source of the modules a run executes, torch's version and the
mixed-precision dtype this machine resolves, so a change to any of them trains anew (and the
older finished run of the same settings is removed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import io
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .checkpoint import mae_from_checkpoint
from .config import SESSION_FIELDS, TrainConfig, config_from_preset
from .data import ImageSet
from .evaluate import finetune
from .mae import MaskedAutoencoderViT
from .optim import autocast_dtype
from .runtime import pick_device
from .train import CHECKPOINT, train


def run_key(cfg: TrainConfig) -> str:
    """A short hash of everything a run's result depends on, as '<settings>-<code>': its
    settings (but not where or how it is shown), then the package's code, torch's version
    and the resolved mixed precision. Chapter 6."""
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in SESSION_FIELDS}
    digest = _source_digest(TRAINING_MODULES)
    amp = autocast_dtype(pick_device(cfg.device), cfg.amp)
    digest.update(f"{torch.__version__} {amp}".encode())
    setting_key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    return f"{setting_key[:10]}-{digest.hexdigest()[:10]}"


# The modules a pre-training run executes: a change to any of them trains the cached models
# anew (a change to the figures, say, does not).
TRAINING_MODULES = ("augment", "batches", "checkpoint", "config", "data", "mae", "masking",
                    "optim", "patches", "pos_embed", "runtime", "train", "vit")


def _source_digest(modules: tuple[str, ...] | None = None) -> Any:
    """A running hash of the package's source files (`modules`, or all of them)."""
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        if modules is None or source.stem in modules:
            digest.update(source.name.encode() + source.read_bytes())
    return digest


def pretrain_once(
    preset: str = "quick", cache: str | Path = "runs/cache", **overrides: Any
) -> tuple[MaskedAutoencoderViT, Path]:
    """The MAE pre-trained by a training preset (with `overrides`), trained on the first call
    and loaded from `cache` afterwards; returns (model in eval mode on the run's device, run
    folder with checkpoint.pth and metrics.jsonl). Chapters 5-9.

    Training happens in `<key>.partial` and the folder is renamed when it ends, so an
    interrupted run is continued (`--resume`), never mistaken for a finished one."""
    cfg = config_from_preset(preset, progress=False, **overrides)
    key = f"{preset}-{run_key(cfg)}"
    cache = Path(cache)
    done = cache / key
    cache.mkdir(parents=True, exist_ok=True)
    with _exclusive(cache / f"{key}.lock"):  # one process trains; the others wait, then load
        if (done / CHECKPOINT).exists():
            print(f"pre-trained '{preset}' model loaded from {done} (trained earlier with the "
                  "same settings and package code)")
        else:
            _train_into(cfg, cache, key, preset)
    model = mae_from_checkpoint(done / CHECKPOINT).to(pick_device(cfg.device)).eval()
    return model, done


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (a no-op where `fcntl` does not exist: Windows)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _train_into(cfg: TrainConfig, cache: Path, key: str, preset: str) -> None:
    """Train `cfg` in `<key>.partial` (resuming an interrupted attempt), rename it `<key>`,
    and remove the runs of the same settings by older code."""
    partial, done = cache / f"{key}.partial", cache / key
    cfg = dataclasses.replace(cfg, output_dir=str(partial))
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        summary = train(cfg, resume=(partial / CHECKPOINT).exists())
    partial.rename(done)
    settings = key.rsplit("-", 1)[0]
    for stale in cache.glob(f"{settings}-*"):  # finished runs of older code; a '.partial'
        if stale.is_dir() and "." not in stale.name and stale.name != key:  # may be training
            shutil.rmtree(stale)
            stale.with_name(f"{stale.name}.lock").unlink(missing_ok=True)
    print(f"pre-trained '{preset}': {summary['steps']} steps on {cfg.dataset} in "
          f"{time.perf_counter() - start:.0f} s, saved in {done}")


def book_model(budget: str, **overrides: Any) -> tuple[MaskedAutoencoderViT, Path]:
    """The MAE the chapters share (landing page, chapters 5-9): the `quick` training preset,
    10 epochs in the quick budget (CPU, two minutes), 100 in the full one (GPU), with
    `overrides` for the variants chapters compare (e.g. `norm_pix_loss=False`); see
    `pretrain_once`."""
    if budget not in ("quick", "full"):
        raise ValueError(f"budget must be 'quick' or 'full', got {budget!r}")
    epochs = {"quick": 10, "full": 100}[budget]
    return pretrain_once("quick", **{"epochs": epochs, **overrides})


_FINETUNE_SIGNATURE = inspect.signature(finetune)


def finetune_once(run: str | Path, data_train: ImageSet, data_test: ImageSet,
                  mae: MaskedAutoencoderViT, **kwargs: Any) -> dict[str, float]:
    """`evaluate.finetune(data_train, data_test, mae, **kwargs)` for the model pre-trained in
    `run` (a folder of `pretrain_once`), computed on the first call and kept in that folder as
    JSON, keyed by the settings and the data; later calls read it. Chapters 7 and 9.

    The key hashes the package's whole source too, so new code means a new fine-tuning."""
    call = _FINETUNE_SIGNATURE.bind(data_train, data_test, mae, **kwargs)
    call.apply_defaults()  # a default passed explicitly or left out is the same setting
    settings = json.dumps({k: str(v) for k, v in sorted(call.arguments.items())
                           if k not in ("data_train", "data_test", "mae", "device")})
    digest = _source_digest()  # all of the package: fine-tuning runs evaluate's code too
    digest.update(settings.encode())
    for data in (data_train, data_test):
        digest.update(data.images.numpy().tobytes() + data.labels.numpy().tobytes())
    path = Path(run) / f"finetune-{digest.hexdigest()[:12]}.json"
    if path.exists():
        result = json.loads(path.read_text())
        print(f"fine-tuning result loaded from {path} (computed earlier, same settings, data "
              "and code)")
        return result
    result = finetune(data_train, data_test, mae, **kwargs)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, path)  # atomic: a reader never sees half a file
    return result


REPOSITORY_URL = "https://raw.githubusercontent.com/mae-tutorial/mae-tutorial/main"


def project_file(path: str) -> str:
    """The text of a file of this book's repository, e.g. a benchmark's results
    ("benchmarks/results/ablations.json"): from the checkout (the package's folder's parent,
    or the parent of the working directory: the notebooks run in book/), else from GitHub, as
    on Colab where only the package is installed. Chapter 9 and the appendices."""
    for root in (Path(__file__).resolve().parents[1], Path.cwd().parent):
        if (root / path).is_file():
            return (root / path).read_text()
    import urllib.request

    url = f"{REPOSITORY_URL}/{path}"
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            return reply.read().decode()
    except OSError as exc:
        raise FileNotFoundError(f"{path} is neither in a checkout of the book's repository nor "
                                f"reachable at {url} ({exc}); clone the repository and run "
                                "from it") from exc
