"""Optimization pieces shared by pre-training and fine-tuning (chapters 6 and 7): the
learning-rate schedule, parameter groups with and without weight decay, layer-wise lr decay,
and the mixed-precision dtype for the hardware at hand."""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from torch import nn


def lr_at(step: int, total_steps: int, peak_lr: float, min_lr: float, warmup_steps: int) -> float:
    """Linear warmup to `peak_lr`, then a half-cycle cosine down to `min_lr`, per iteration
    (chapters 3 and 6)."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr + (peak_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay for weight matrices (and tokens), none for norms and biases (1-D)
    (chapters 3 and 6)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def layer_decay_groups(model: nn.Module, weight_decay: float,
                       layer_decay: float) -> list[dict[str, Any]]:
    """Parameter groups with layer-wise lr decay for fine-tuning a ViT (chapter 7): block i
    gets lr * decay^(depth - i); the embeddings decay^(depth + 1); the head and final norm the
    full lr. No weight decay on 1-D parameters (norms, biases). Each group's `lr_scale`
    multiplies the scheduled lr."""
    depth = len(model.blocks)
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if name.startswith(("cls_token", "pos_embed", "patch_embed")):
            layer = 0
        elif name.startswith("blocks."):
            layer = int(name.split(".")[1]) + 1
        else:
            layer = depth + 1
        decay = p.ndim > 1
        group = groups.setdefault((layer, decay), {
            "params": [], "weight_decay": weight_decay if decay else 0.0,
            "lr_scale": layer_decay ** (depth + 1 - layer)})
        group["params"].append(p)
    return list(groups.values())


def adamw(groups: list[dict[str, Any]], betas: tuple[float, float],
          device: torch.device) -> torch.optim.AdamW:
    """AdamW over `groups` (learning rates are set at every step). Fused into one kernel on
    CPUs and CUDA GPUs: on a CPU PyTorch otherwise updates the parameters one by one, and
    the update of the quick model takes 3.5 ms instead of 0.7 (benchmarks/README.md).
    Chapter 6."""
    return torch.optim.AdamW(groups, lr=0.0, betas=betas, fused=device.type in ("cpu", "cuda"))


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AVX512-BF16 or AMX). Without
    it, a bf16 matrix product is emulated and can be ~100x slower than fp32 (measured on an
    AVX2-only machine; benchmarks/README.md). `MAE_TUTORIAL_CPU_BF16=0` in the environment
    says no on any CPU (to run as an AVX2-only machine does), `=1` says yes. Chapter 6."""
    forced = os.environ.get("MAE_TUTORIAL_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    if forced is not None:
        raise ValueError(f"MAE_TUTORIAL_CPU_BF16 must be 0 or 1, not {forced!r}; unset it to "
                         "let the CPU's features decide")
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def gpu_has_native_bf16(device: torch.device) -> bool:
    """Whether this CUDA GPU computes in bf16 in hardware: compute capability 8.0 (Ampere)
    and newer. Older GPUs, such as Colab's T4 (7.5), emulate it slowly although
    `torch.cuda.is_bf16_supported()` says True. False for any other device. Chapter 6."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8


def autocast_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """The mixed-precision dtype for this hardware and setting (None: full fp32) (chapter 6).
    `auto`: bf16 on GPUs that have it (`gpu_has_native_bf16`), fp16 on older ones such as
    Colab's T4; bf16 on CPUs with native bf16 matrix products (`cpu_has_native_bf16`), fp32
    on other CPUs and on Apple's MPS."""
    if amp not in ("auto", "bf16", "fp16", "off"):
        raise ValueError(f"amp must be auto, bf16, fp16 or off, got {amp!r}")
    if amp == "auto" and device.type == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else None
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":
        return torch.bfloat16 if gpu_has_native_bf16(device) else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocast_for(device: torch.device, amp: str = "auto") -> torch.autocast:
    """Autocast in the dtype `autocast_dtype(device, amp)` picks; disabled where that is fp32.
    Evaluation and fine-tuning run under it (chapter 7)."""
    dtype = autocast_dtype(device, amp)
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
