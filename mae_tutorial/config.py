"""What a pre-training run depends on (chapter 6): `TrainConfig`, the training presets, the
checks of a configuration, and the command line built from it."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import asdict, dataclass, field
from typing import Any

from .data import DATASETS
from .mae import MODEL_PRESETS, MAEConfig


def _f(default: Any, help: str) -> Any:  # a dataclass field with its help text
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Everything a pre-training run depends on (saved in every checkpoint). Chapter 6."""

    # what to train, on what
    dataset: str = _f("synthetic", "'synthetic' (shapes), 'patterns' or 'shapes_on_patterns' "
                                   "(generated offline), 'photos' (crops of the "
                                   "shipped photographs) or 'cifar10' (downloaded)")
    data_root: str = _f("data", "folder where datasets are stored or downloaded")
    synthetic_size: int = _f(50_000, "number of images in a generated training set")
    data_seed: int = _f(0, "seed of a generated training set's images (not CIFAR-10's); --seed "
                           "leaves them as they are, so runs of several seeds see the same data")
    norm_pix_loss: bool = _f(True, "predict per-patch normalized pixels (the paper's best target; "
                                   "its ablations' default is raw pixels)")
    mask_ratio: float = _f(0.75, "fraction of patches removed from every image")
    loss_on_all: bool = _f(False, "score every patch, visible ones too (a worse variant, not "
                                  "MAE's loss; chapter 5)")
    masking: str = _f("random", "which patches are removed: random (MAE), block or grid (the "
                                "paper's Table 1f ablation; grid needs mask_ratio 0.75)")
    # the model: a preset, and the changes the paper's ablations make to it
    model: str = _f("vit_tiny_patch4", f"model preset, one of {sorted(MODEL_PRESETS)}")
    decoder_depth: int | None = _f(None, "decoder blocks (None: the preset's; Table 1a)")
    decoder_embed_dim: int | None = _f(None, "decoder width (None: the preset's; Table 1b)")
    encoder_mask_token: bool = _f(False, "give the encoder mask tokens at the removed patches "
                                         "(Table 1c's worse, slower variant, not MAE)")
    # how long
    epochs: int = _f(100, "passes over the training set (unless max_steps is set)")
    max_steps: int | None = _f(None, "total optimizer steps; overrides epochs")
    stop_after: int | None = _f(None, "end this session after this many steps, with a "
                                      "checkpoint; --resume continues (schedule unchanged)")
    # optimization
    batch_size: int = _f(256, "images per micro-step, over all processes together")
    accum_steps: int = _f(1, "micro-steps accumulated into one optimizer step")
    base_lr: float = _f(1.5e-4, "learning rate per 256 images: lr = base_lr * batch * accum / 256")
    min_lr: float = _f(0.0, "learning rate at the end of the cosine schedule")
    warmup_fraction: float = _f(0.05, "fraction of the steps with a linear warmup")
    weight_decay: float = _f(0.05, "AdamW weight decay (not applied to norms and biases)")
    beta1: float = _f(0.9, "AdamW beta1")
    beta2: float = _f(0.95, "AdamW beta2 (0.95, as the paper)")
    clip_grad: float | None = _f(None, "clip the gradient norm to this value (off if None)")
    # how to run
    amp: str = _f("auto", "mixed precision: auto (bf16 on GPUs that have it, else fp16 with "
                          "a gradient scaler; bf16 on CPUs with native bf16, else fp32), "
                          "bf16, fp16 or off")
    compile: bool = _f(False, "torch.compile the model (slow start, faster steps on GPUs)")
    pipeline: str = _f("device", "augmentation: 'device' (batched on the device, whole dataset "
                                 "in device memory) or 'loader' (DataLoader + torchvision)")
    num_workers: int = _f(2, "DataLoader worker processes (pipeline 'loader' only)")
    device: str = _f("auto", "auto (cuda, then mps, then cpu), or cpu, cuda, cuda:1, mps")
    seed: int = _f(0, "seed of the model's initialization, data order, augmentation and masks")
    output_dir: str = _f("runs/mae", "folder for the checkpoint and metrics.jsonl")
    checkpoint_every: int = _f(500, "write a checkpoint every this many steps (and at the end)")
    log_every: int = _f(10, "append a line to metrics.jsonl every this many steps")
    progress: bool = _f(True, "show a progress bar")


MASKINGS = ("random", "block", "grid")


def model_config(cfg: TrainConfig) -> MAEConfig:
    """The architecture a configuration asks for: its preset, changed by the ablation fields
    that are set. The ablations appendix; chapter 6 uses it inside the trainer."""
    changes = {"decoder_depth": cfg.decoder_depth, "decoder_embed_dim": cfg.decoder_embed_dim}
    return MODEL_PRESETS[cfg.model].replace(
        norm_pix_loss=cfg.norm_pix_loss, encoder_mask_token=cfg.encoder_mask_token,
        **{k: v for k, v in changes.items() if v is not None})


# Training presets: `quick` is what every chapter trains, on any machine; `full` a real GPU run.
TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    # what every chapter trains, on any machine: 936 steps of 64 images on 'synthetic' (about
    # a minute and a half on a 2-core CPU, under half a minute on a GPU), and MAE learns
    # features. More, smaller steps at a high learning rate won a measured sweep; 6 epochs
    # instead of 10 keep a cold build of the book short (benchmarks/README.md).
    "quick": dict(model="vit_mini_patch4", synthetic_size=10_000, epochs=6, batch_size=64,
                  base_lr=5e-3, warmup_fraction=0.05, checkpoint_every=250, log_every=10),
    # one GPU: the CIFAR-scale ViT-Tiny MAE
    "full": dict(model="vit_tiny_patch4", epochs=400, batch_size=256, base_lr=1.5e-4 * 4,
                 warmup_fraction=0.05, checkpoint_every=1000, log_every=50),
}
# Fields that may differ when a run is resumed (they do not change what is computed).
SESSION_FIELDS = {"stop_after", "device", "num_workers", "output_dir", "progress", "data_root",
                  "compile", "checkpoint_every", "log_every"}
# Fields a resume may change to recover a run (after a NaN, or on other hardware: a run can
# move between a CPU, a T4 and an H100); the changes are printed and logged in the metrics.
RECOVERY_FIELDS = {"base_lr", "clip_grad", "amp"}


def config_from_preset(name: str, **overrides: Any) -> TrainConfig:
    """A `TrainConfig` from a training preset ('quick' or 'full'), with fields overridden by
    keyword (chapter 6)."""
    if name not in TRAIN_PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(TRAIN_PRESETS)}")
    return TrainConfig(**{**TRAIN_PRESETS[name], **overrides})


def config_to_resume(saved: dict[str, Any], **given: Any) -> TrainConfig:
    """The configuration a resumed run continues with: the one its checkpoint saved, changed
    by the fields `given` on the command line (checked by `check_same_run`). Chapter 6."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: to_tuple(v) for k, v in saved.items() if k in known})
    return dataclasses.replace(cfg, **given)


def check_config(cfg: TrainConfig, world: int = 1) -> None:
    """Fail early, with the fix, on settings that cannot run on `world` processes. Chapter 6."""
    if cfg.dataset not in DATASETS:
        raise ValueError(f"unknown dataset {cfg.dataset!r}; choose one of {list(DATASETS)}")
    if cfg.model not in MODEL_PRESETS:
        raise ValueError(f"unknown model preset {cfg.model!r}; "
                         f"choose one of {sorted(MODEL_PRESETS)}")
    if cfg.masking not in MASKINGS:
        raise ValueError(f"masking must be one of {MASKINGS}, got {cfg.masking!r}")
    if cfg.masking == "grid" and cfg.mask_ratio != 0.75:
        raise ValueError(f"grid masking keeps one patch of every 2x2 square, a mask_ratio of "
                         f"0.75; got {cfg.mask_ratio}. Use --mask-ratio 0.75 or another masking")
    if cfg.pipeline not in ("device", "loader"):
        raise ValueError(f"pipeline must be 'device' or 'loader', got {cfg.pipeline!r}")
    if cfg.batch_size < world:
        raise ValueError(f"batch_size {cfg.batch_size} is smaller than the number of processes "
                         f"({world}); every process needs at least one image")
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} does not split evenly over {world} "
                         f"processes; use a multiple of {world}")
    for name in ("batch_size", "accum_steps", "checkpoint_every", "log_every"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(cfg, name)}")
    if cfg.dataset != "cifar10" and cfg.synthetic_size < cfg.batch_size:
        raise ValueError(f"synthetic_size {cfg.synthetic_size} is smaller than one batch "
                         f"({cfg.batch_size})")


def check_same_run(cfg: TrainConfig, saved: dict[str, Any]) -> None:
    """A resumed run must keep every setting that changes what is computed. Chapter 6."""
    differ = [f"{k}: checkpoint {saved[k]!r}, now {v!r}" for k, v in asdict(cfg).items()
              if k not in SESSION_FIELDS | RECOVERY_FIELDS and k in saved
              and to_tuple(saved[k]) != v]
    if differ:
        raise ValueError("--resume continues a run with its own settings, but these differ: "
                         + "; ".join(differ) + ". Drop them from the command line (the "
                         "checkpoint's values are used), or start a new run in another "
                         "--output-dir")


def recovery_changes(cfg: TrainConfig, saved: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The recovery settings (`RECOVERY_FIELDS`) a resume changes: name -> (saved, now).
    Chapter 6."""
    return {k: (saved[k], getattr(cfg, k)) for k in sorted(RECOVERY_FIELDS)
            if k in saved and to_tuple(saved[k]) != getattr(cfg, k)}


def to_tuple(x: Any) -> Any:
    """Lists back to tuples, as a checkpoint's saved configuration needs. Chapter 6."""
    return tuple(to_tuple(v) for v in x) if isinstance(x, list | tuple) else x


def arg_parser() -> argparse.ArgumentParser:
    """The command line of `python -m mae_tutorial.train`: one flag per `TrainConfig` field,
    typed from its type hint. Chapter 6."""
    p = argparse.ArgumentParser(
        prog="python -m mae_tutorial.train",
        description="Pre-train a Masked Autoencoder. Runs offline on the generated 'synthetic' "
                    "dataset by default. Under torchrun it uses DistributedDataParallel.")
    p.add_argument("--preset", default="quick", choices=sorted(TRAIN_PRESETS),
                   help="starting configuration: quick (CPU, minutes) or full (GPU)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --output-dir from its checkpoint")
    hints = typing.get_type_hints(TrainConfig)  # real types, e.g. int | None
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kinds = [t for t in typing.get_args(hints[f.name]) if t is not type(None)]
        kind = kinds[0] if kinds else hints[f.name]  # int | None -> int
        if kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                           help=f.metadata["help"])
        else:
            p.add_argument(flag, type=kind, default=None, help=f.metadata["help"],
                           **({"choices": list(DATASETS)} if f.name == "dataset" else {}))
    return p
