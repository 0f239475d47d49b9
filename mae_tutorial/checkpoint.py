"""Checkpoints: one safe reader, one atomic writer, one loader of weights into a model, models
built from any checkpoint, and the files of a training run's folder (chapters 6 to 8).

Every file is read with `torch.load(weights_only=True)`: no code in a file runs on load.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .mae import MODEL_PRESETS, MAEConfig, MaskedAutoencoderViT, build_mae
from .official import OFFICIAL_CHECKPOINTS, download_checkpoint
from .vit import VisionTransformer

Tensor = torch.Tensor

# A training run's folder (`--output-dir`): its checkpoint and the metrics it logged.
CHECKPOINT = "checkpoint.pth"
METRICS = "metrics.jsonl"


def read_checkpoint(path: str | os.PathLike, required: Iterable[str] = (), *,
                    map_location: str | torch.device = "cpu", mmap: bool = False) -> Any:
    """Read a checkpoint file with `weights_only=True` (onto the CPU, or the device
    `map_location` names), with a clear error for a truncated, damaged or foreign file, or one
    that lacks a `required` top-level entry. `mmap=True` maps the file instead of reading it:
    a tensor's bytes are read only when it is used, so a look at the file's settings costs
    next to nothing. Chapters 6 and 8."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise
    except Exception as exc:  # truncated file, not a checkpoint, pickled code, ...
        raise ValueError(f"could not read the checkpoint {os.fspath(path)!r}: {exc}. The file "
                         "may be truncated or not a PyTorch checkpoint; nothing was changed. "
                         "Download or save it again") from exc
    missing = [key for key in required if not isinstance(state, dict) or key not in state]
    if missing:
        raise ValueError(f"{os.fspath(path)!r} is not the checkpoint expected here: it lacks "
                         f"{', '.join(repr(k) for k in missing)}")
    return state


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write atomically (chapter 6): a temporary file in the same folder, flushed and fsynced,
    then renamed over the old checkpoint. A crash at any moment leaves the previous or the
    new file whole."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_training_checkpoint(path: str | os.PathLike, **options: Any) -> dict[str, Any]:
    """A checkpoint written by the trainer (model, optimizer, step, config, ...); `options`
    as `read_checkpoint`'s (`map_location`, `mmap`). Chapter 6."""
    return read_checkpoint(path, required=("model", "step", "config"), **options)


def run_folder_checkpoint(output_dir: str | os.PathLike, resume: bool,
                          state: dict[str, Any] | None = None,
                          map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """The checkpoint a run in `output_dir` resumes from (`state`, if the caller has read it,
    else read here onto `map_location`), or None for a new run, which must not overwrite one.
    Stale temporary files of interrupted writes are removed. Chapter 6."""
    path = Path(output_dir) / CHECKPOINT
    if resume:
        if state is None and not path.exists():
            raise FileNotFoundError(f"--resume: no checkpoint at {path}; start without "
                                    "--resume, or point --output-dir at the run to continue")
        if state is None:
            state = read_training_checkpoint(path, map_location=map_location)
    elif path.exists():
        raise FileExistsError(f"{path} exists: pass --resume to continue that run, or "
                              "choose another --output-dir (nothing was overwritten)")
    if int(os.environ.get("RANK", "0")) == 0:
        for stale in path.parent.glob(f".{CHECKPOINT}.tmp-*"):
            stale.unlink(missing_ok=True)
    return state if resume else None


def check_writable(output_dir: Path) -> None:
    """Fail before training, with the fix, if the run folder cannot be written. Chapter 6."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise PermissionError(f"the output directory {str(output_dir)!r} is not writable ({exc});"
                              " choose another with --output-dir") from exc


def read_metrics(output_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The metrics a run logged (one dict per line of metrics.jsonl), for `viz.plot_metrics`.
    Chapter 6."""
    path = Path(output_dir) / METRICS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def trim_metrics(output_dir: str | os.PathLike, step: int) -> None:
    """Drop the metric lines logged after `step`, the checkpoint a run resumes from (they will
    be logged again). Chapter 6."""
    path = Path(output_dir) / METRICS
    if path.exists():
        keep = [line for line in path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in keep))


def _weights(checkpoint: str | os.PathLike | Mapping[str, Any]) -> Mapping[str, Tensor]:
    """The state dict in a file or mapping; one holding it under "model" (the official
    releases, this package's trainer) is unwrapped."""
    state = checkpoint if isinstance(checkpoint, Mapping) else read_checkpoint(checkpoint)
    if isinstance(state.get("model"), Mapping):
        state = state["model"]
    return state


def _describe(keys: list[str], limit: int = 10) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (and {len(keys) - limit} more)" if len(keys) > limit else "")


def load_weights(model: nn.Module, checkpoint: str | os.PathLike | Mapping[str, Any],
                 strict: bool = True) -> tuple[list[str], list[str]]:
    """Load weights into `model` from a file or a state dict; return (missing, unexpected).

    Keys or shapes that do not fit are named in the error; `strict=False` tolerates missing
    and unexpected keys (e.g. an encoder-only checkpoint) but never a shape mismatch.
    Chapters 8 and 6.
    """
    state = _weights(checkpoint)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                         for k in set(own) & set(state) if state[k].shape != own[k].shape)
    problems = []
    if wrong_shape:
        problems.append(f"shapes differ for {_describe(wrong_shape)}")
    if strict and missing:
        problems.append(f"missing keys: {_describe(missing)}")
    if strict and unexpected:
        problems.append(f"unexpected keys: {_describe(unexpected)}")
    if problems:
        raise ValueError("the checkpoint does not fit this model's architecture; "
                         + "; ".join(problems)
                         + ". Build the model with the checkpoint's configuration "
                         "(or pass strict=False to load a partial checkpoint).")
    model.load_state_dict(state, strict=False)
    return missing, unexpected


def _infer_preset(state: Mapping[str, Tensor]) -> str:
    dim = state["cls_token"].shape[-1]
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    patch = state["patch_embed.proj.weight"].shape[-1]
    for name, p in MODEL_PRESETS.items():
        if (p.embed_dim, p.depth, p.patch_size) == (dim, depth, patch):
            return name
    raise ValueError(f"cannot tell the architecture of this checkpoint (embed dim {dim}, depth "
                     f"{depth}, patch {patch}); build the model yourself and call "
                     "load_weights(model, path)")


def mae_from_checkpoint(source: str | os.PathLike, root: str | os.PathLike = "data/checkpoints"
                        ) -> MaskedAutoencoderViT:
    """A `MaskedAutoencoderViT` with the weights of an official release (by name, e.g.
    "mae_visualize_vit_large", downloaded and verified), an official-format file, or a
    checkpoint written by this package's trainer (chapters 8 and 6).

    Encoder-only files load with their decoder missing; the model's `encoder_only` is then
    True and it refuses to reconstruct.
    """
    if isinstance(source, str) and source in OFFICIAL_CHECKPOINTS:
        entry = OFFICIAL_CHECKPOINTS[source]
        state = _weights(download_checkpoint(source, root))
        config = MODEL_PRESETS[entry.preset].replace(norm_pix_loss=entry.norm_pix_loss)
    else:
        raw = read_checkpoint(source)
        state = _weights(raw)
        if "model_config" in raw:  # written by mae_tutorial.train
            config = MAEConfig(**raw["model_config"])
        else:
            config = MODEL_PRESETS[_infer_preset(state)]
    model = build_mae(config)
    missing, _ = load_weights(model, state, strict=False)
    model.encoder_only = any(k.startswith(("decoder", "mask_token")) for k in missing)
    encoder_missing = [k for k in missing if not k.startswith(("decoder", "mask_token"))]
    if encoder_missing:
        raise ValueError(f"the checkpoint lacks encoder weights: {_describe(encoder_missing)}")
    return model


def vit_from_mae(source: MaskedAutoencoderViT | Mapping[str, Tensor], num_classes: int,
                 global_pool: bool = True, drop_path_rate: float = 0.0,
                 **vit_kwargs: Any) -> VisionTransformer:
    """A `VisionTransformer` classifier whose encoder starts from an MAE's encoder
    (chapter 7).

    `source` is a model (its architecture is used) or a state dict (pass the architecture in
    `vit_kwargs`). The head and, with global pooling, `fc_norm` start fresh (the head with the
    paper's small init, std 2e-5); the MAE's final `norm` is used only for cls-token pooling.
    """
    if isinstance(source, MaskedAutoencoderViT):
        vit_kwargs = {**source.config.encoder_kwargs(), **vit_kwargs}
        state = source.state_dict()
    else:
        state = source
    vit = VisionTransformer(num_classes=num_classes, global_pool=global_pool,
                            drop_path_rate=drop_path_rate, **vit_kwargs)
    encoder = {k: v for k, v in state.items()
               if not k.startswith(("decoder", "mask_token", "encoder_mask_token", "head.",
                                    "fc_norm."))
               and not (global_pool and k.startswith("norm."))}
    missing, _ = load_weights(vit, encoder, strict=False)
    expected_missing = {"head.weight", "head.bias", "fc_norm.weight", "fc_norm.bias"}
    if set(missing) - expected_missing:
        raise ValueError("the MAE weights do not cover the classifier's encoder; missing: "
                         f"{_describe(sorted(set(missing) - expected_missing))}")
    nn.init.normal_(vit.head.weight, std=2e-5)
    nn.init.zeros_(vit.head.bias)
    return vit
