"""Pre-train once, use many times: the cached pre-training runs, fine-tunings and baseline
tables that chapters and benchmarks share.

Chapters 5 to 9 look at the same quick MAE from different sides (its loss, its training, its
features). Each calls `book_model()`: the first call trains it, as
`python -m mae_tutorial.train --preset quick` would, and later calls load it. The cache key
hashes the run's settings, the source of every package module the trainer imports (found by
reading the imports, so a new module on the training path is never missed), torch's version
and the mixed-precision dtype this machine resolves, so a change to any of them trains anew (and
the older finished run of the same settings is removed). Loading prints nothing and training
shows only a progress bar on stderr, so a chapter's page looks the same whichever happened.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import hashlib
import inspect
import io
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import CHECKPOINT, METRICS, mae_from_checkpoint, save_checkpoint
from ..config import SESSION_FIELDS, TrainConfig, config_from_preset
from ..contrastive import pretrain_contrastive
from ..data import ImageSet
from ..evaluate import baseline_table
from ..finetune import finetune
from ..mae import MaskedAutoencoderViT
from ..optim import autocast_dtype
from ..runtime import pick_device
from ..train import train

PACKAGE = Path(__file__).resolve().parents[1]  # mae_tutorial/


def imported_modules(module: str, package: Path | None = None) -> list[str]:
    """`module` and every module of the package it imports, directly or through another
    (read from the source files' import statements, including those inside functions), e.g.
    `imported_modules("train")`. Chapter 6."""
    package = PACKAGE if package is None else package
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        source = package / f"{name}.py"
        if name in seen or not source.is_file():
            continue
        seen.add(name)
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:  # from .x import y
                todo += [node.module.split(".")[0]] if node.module else [
                    alias.name for alias in node.names]  # from . import x
    return sorted(seen)


def _source_digest(module: str, package: Path | None = None) -> Any:
    """A running hash of the source of `module` and of every package module it imports."""
    package = PACKAGE if package is None else package
    digest = hashlib.sha256()
    for name in imported_modules(module, package):
        digest.update(f"{name}.py".encode() + (package / f"{name}.py").read_bytes())
    return digest


def run_key(cfg: TrainConfig, package: Path | None = None, trainer: str = "train") -> str:
    """A short hash of everything a run's result depends on, as '<settings>-<code>': its
    settings (but not where or how it is shown), then the code the trainer runs (the module
    `trainer` and what it imports), torch's version and the resolved mixed precision.
    Chapter 6."""
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in SESSION_FIELDS}
    digest = _source_digest(trainer, package)
    amp = autocast_dtype(pick_device(cfg.device), cfg.amp)
    digest.update(f"{torch.__version__} {amp}".encode())
    setting_key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    return f"{setting_key[:10]}-{digest.hexdigest()[:10]}"


def default_cache() -> Path:
    """Where the book's pre-trained models are kept: the folder `MAE_RUNS_CACHE` names, else
    `runs/cache` under the working directory (`book/runs/cache` when the chapters run in the
    checkout). Chapters 5-9."""
    return Path(os.environ.get("MAE_RUNS_CACHE") or "runs/cache")


def pretrain_once(
    preset: str = "quick", cache: str | Path | None = None, **overrides: Any
) -> tuple[MaskedAutoencoderViT, Path]:
    """The MAE pre-trained by a training preset (with `overrides`), trained on the first call
    and loaded from `cache` (default: `default_cache()`) afterwards; returns (model in eval mode
    on the run's device, run folder with checkpoint.pth and metrics.jsonl). Chapters 5-9.

    Training happens in `<key>.partial` and the folder is renamed when it ends, so an
    interrupted run is continued (`--resume`), never mistaken for a finished one."""
    cfg = config_from_preset(preset, **overrides)
    key = f"{preset}-{run_key(cfg)}"
    cache = default_cache() if cache is None else Path(cache)
    done = cache / key
    cache.mkdir(parents=True, exist_ok=True)
    with _exclusive(cache / f"{key}.lock"):  # one process trains; the others wait, then load
        if not (done / CHECKPOINT).exists():
            _train_into(cfg, cache, key)
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


def _train_into(cfg: TrainConfig, cache: Path, key: str) -> None:
    """Train `cfg` in `<key>.partial` (resuming an interrupted attempt), rename it `<key>`,
    and remove the runs of the same settings by older code. Only the progress bar shows (on
    stderr, which the book's pages leave out)."""
    partial, done = cache / f"{key}.partial", cache / key
    cfg = dataclasses.replace(cfg, output_dir=str(partial), progress=True)
    with contextlib.redirect_stdout(io.StringIO()):  # the run's log lines
        train(cfg, resume=(partial / CHECKPOINT).exists())
    made_by = _made_by(cfg)
    (partial / MADE_BY).write_text(json.dumps(made_by))
    partial.rename(done)
    settings = key.rsplit("-", 1)[0]
    for stale in cache.glob(f"{settings}-*"):  # finished runs of older code; a '.partial'
        if (stale.is_dir() and not stale.is_symlink() and "." not in stale.name  # may be
                and stale.name != key and _read_made_by(stale) == made_by):  # training
            shutil.rmtree(stale)
            stale.with_name(f"{stale.name}.lock").unlink(missing_ok=True)


# Beside a finished run: the torch and the precision that made it. A run of the same settings
# made with another torch or precision (a CPU with bf16, and the Colab simulation's fp32
# sharing one cache) is another machine's run, not an older one: it is kept.
MADE_BY = "made_by.json"


def _made_by(cfg: TrainConfig) -> dict[str, str]:
    amp = autocast_dtype(pick_device(cfg.device), cfg.amp)
    return {"torch": torch.__version__, "amp": str(amp)}


def _read_made_by(run: Path) -> dict[str, str] | None:
    try:
        return json.loads((run / MADE_BY).read_text())
    except (OSError, ValueError):
        return None  # written before the file existed: whose it is, unknown; kept


# MoCo v3's base learning rate in the quick budget, chosen by measurement (python
# benchmarks/representation.py --lr-sweep 5e-3 1e-3 2e-4, seed 0): of the three, 2e-4 gave the
# best linear probe on the cls token and on the mean of the patch tokens (benchmarks/README).
CONTRASTIVE_LR = 2e-4


def contrastive_once(preset: str = "quick", cache: str | Path | None = None,
                     **overrides: Any) -> tuple[MaskedAutoencoderViT, Path]:
    """The contrastive baseline (`contrastive.pretrain_contrastive`, MoCo v3) trained with a
    training preset's data, steps, batch and schedule at base lr `CONTRASTIVE_LR` (with
    `overrides`, e.g. `seed=1` or `base_lr=1e-3`), on the first call, and loaded from `cache`
    afterwards: (its ViT as a `MaskedAutoencoderViT` without a decoder, in eval mode on the
    run's device; the run folder, with checkpoint.pth and metrics.jsonl). The book's
    evaluations take it as they take MAE's. The representation chapter."""
    cfg = config_from_preset(preset, **{"base_lr": CONTRASTIVE_LR} | overrides)
    key = f"contrastive-{preset}-{run_key(cfg, trainer='contrastive')}"
    cache = default_cache() if cache is None else Path(cache)
    done = cache / key
    cache.mkdir(parents=True, exist_ok=True)
    with _exclusive(cache / f"{key}.lock"):
        if not (done / CHECKPOINT).exists():  # written last, atomically: the run is whole
            model, log = pretrain_contrastive(cfg)
            done.mkdir(exist_ok=True)
            (done / METRICS).write_text("".join(json.dumps(r) + "\n" for r in log))
            vit = {k: v for k, v in model.encoder.state_dict().items()  # the decoder was
                   if not k.startswith(("decoder", "mask_token"))}  # never trained: left out
            save_checkpoint(done / CHECKPOINT, {
                "model": vit, "config": dataclasses.asdict(cfg),
                "model_config": dataclasses.asdict(model.encoder.config)})
    encoder = mae_from_checkpoint(done / CHECKPOINT).to(pick_device(cfg.device)).eval()
    return encoder, done


def book_model(**overrides: Any) -> tuple[MaskedAutoencoderViT, Path]:
    """The MAE the chapters share (chapters 5-9 and the landing page): the `quick` training preset,
    the same on every machine (a GPU only trains it faster), with `overrides` for the
    variants chapters compare (e.g. `norm_pix_loss=False`); see `pretrain_once`."""
    return pretrain_once("quick", **overrides)


_FINETUNE_SIGNATURE = inspect.signature(finetune)


def finetune_once(run: str | Path, data_train: ImageSet, data_test: ImageSet,
                  mae: MaskedAutoencoderViT, **kwargs: Any) -> dict[str, float]:
    """`finetune.finetune(data_train, data_test, mae, **kwargs)` for the model pre-trained in
    `run` (a folder of `pretrain_once`), computed on the first call (with a progress bar on
    stderr) and kept in that folder as JSON, keyed by the settings and the data; later calls
    read it. Chapters 7 and 9.

    The key hashes the source of `finetune` and of what it imports too, so new fine-tuning
    code means a new fine-tuning (new evaluation or figure code does not)."""
    call = _FINETUNE_SIGNATURE.bind(data_train, data_test, mae, **kwargs)
    call.apply_defaults()  # a default passed explicitly or left out is the same setting
    settings = json.dumps({k: str(v) for k, v in sorted(call.arguments.items())
                           if k not in ("data_train", "data_test", "mae", "device",
                                        "progress")})
    digest = _source_digest("finetune")
    digest.update(settings.encode())
    for data in (data_train, data_test):
        digest.update(data.images.numpy().tobytes() + data.labels.numpy().tobytes())
    path = Path(run) / f"finetune-{digest.hexdigest()[:12]}.json"
    if path.exists():
        return json.loads(path.read_text())
    result = finetune(data_train, data_test, mae, **{"progress": True, **kwargs})
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, path)  # atomic: a reader never sees half a file
    return result


_BASELINE_SIGNATURE = inspect.signature(baseline_table)


def baselines_once(model: MaskedAutoencoderViT, data_train: ImageSet, data_test: ImageSet,
                   cache: str | Path | None = None,
                   **kwargs: Any) -> dict[str, dict[str, float]]:
    """`evaluate.baseline_table(model, data_train, data_test, **kwargs)`: the frozen-feature
    baselines that need no pre-training (raw pixels, the random-init ViT, a random CNN),
    computed on the first call and kept in `cache` (default: `default_cache()`) as JSON;
    later calls read it. Chapters 5 and 7, the errata and ablations appendices.

    The file is keyed by the settings, `model`'s architecture (its config: the random-init
    ViT never sees the trained weights), the data, the source of `evaluate` and of what it
    imports, torch's version and the device's mixed precision (the ViT's features are
    computed under it). A file of the same settings and data from older code is removed."""
    call = _BASELINE_SIGNATURE.bind(model, data_train, data_test, **kwargs)
    call.apply_defaults()  # a default passed explicitly or left out is the same setting
    settings = {k: v for k, v in sorted(call.arguments.items())
                if k not in ("model", "data_train", "data_test")}
    architecture = dataclasses.asdict(model.config)
    what = hashlib.sha256(json.dumps([settings, architecture], sort_keys=True,
                                     default=str).encode())
    for data in (data_train, data_test):
        what.update(data.images.numpy().tobytes() + data.labels.numpy().tobytes())
    device = next(model.parameters()).device
    code = _source_digest("evaluate")
    code.update(f"{torch.__version__} {device.type} {autocast_dtype(device, 'auto')}".encode())
    cache = default_cache() if cache is None else Path(cache)
    prefix = f"baselines-{what.hexdigest()[:10]}"
    path = cache / f"{prefix}-{code.hexdigest()[:10]}.json"
    if path.exists():
        return json.loads(path.read_text())
    result = baseline_table(model, data_train, data_test, **kwargs)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # one per writer
    tmp.write_text(json.dumps(result))
    os.replace(tmp, path)  # atomic: a reader never sees half a file
    for stale in cache.glob(f"{prefix}-*.json"):  # the same table by older code
        if stale != path:
            stale.unlink(missing_ok=True)
    return result
