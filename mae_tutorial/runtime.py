"""Where the code runs: device choice, seeds, and how long a call takes there."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


def pick_device(name: str | None = None) -> torch.device:
    """The requested device, or the best available one: cuda, then mps, then cpu
    (every chapter's setup cell, from chapter 1)."""
    if name is not None and name != "auto":
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was requested but no CUDA GPU is visible; "
                             "use --device cpu or 'auto'")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def synchronize(device: torch.device) -> None:
    """Wait until the work queued on `device` is done (a GPU runs asynchronously: a call
    returns before its kernels finish); nothing to wait for on a CPU. Chapter 4."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def time_calls(fn: Callable[[], Any], device: torch.device, repeats: int = 5,
               warmup: int = 1, calls: int = 1) -> list[float]:
    """Seconds per call of `fn` on `device`, measured `repeats` times, after `warmup` calls that
    are not timed (the first call of a model pays for allocation and kernel choice). Each
    measurement times `calls` calls between two synchronizations of the device, so a time is
    the work's, not its queuing: `calls=1` for the time of one call, more for a throughput
    (a GPU then overlaps a call's launches with the previous call's work). The fastest is the
    machine's best; the median, a typical call. Chapter 4."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        synchronize(device)
        times.append((time.perf_counter() - start) / calls)
    return times


@contextlib.contextmanager
def _tf32_flags(allowed: bool) -> Iterator[None]:
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def tf32(device: torch.device) -> contextlib.AbstractContextManager:
    """Inside this block, on an NVIDIA GPU, fp32 matrix products and convolutions may use TF32
    tensor cores (Ampere and newer; about 10 bits of mantissa, as the official code's training
    allows); the settings before it come back after it, so a notebook's later cells compute
    as they would have. Training and fine-tuning run in it. Nothing changes on other devices.
    Chapter 9."""
    return _tf32_flags(True) if device.type == "cuda" else contextlib.nullcontext()


def exact_fp32() -> contextlib.AbstractContextManager:
    """Inside this block, fp32 matrix products and convolutions on an NVIDIA GPU are computed in
    full fp32, not in TF32, which cuDNN uses for convolutions by default: for checks that
    compare results to 1e-6. Nothing changes on a CPU. Chapters 1 and 6."""
    return _tf32_flags(False)


def derive_seed(seed: int, stream: str, index: int = 0) -> int:
    """The seed of one random stream of a run (chapter 9; chapter 6's runs use it): from the
    run's `seed`, the stream's name ("order", "augment", "mask", "synthetic-train", ...) and
    an index (an epoch, a step, a chunk). 63 bits of SHA-256, so streams never share seeds,
    within a run or across runs (seed s + 1's augmentation is not seed s's masking)."""
    digest = hashlib.sha256(f"{seed}/{stream}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices) for a reproducible run.
    Every chapter's setup, from chapter 1."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The global random state of torch (CPU), Python and NumPy, for a checkpoint. No CUDA
    state: it is one per GPU, and every step draws from its own seeded generators. Chapter 6."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached)}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` saved. Chapter 6."""
    torch.set_rng_state(state["torch"].cpu())  # a checkpoint read onto a GPU has it there
    random.setstate(_to_tuple(state["python"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    # An older checkpoint's "cuda" entry (one state per GPU it saw) is ignored: restoring it
    # fails on a machine with fewer GPUs, and no step depends on it.


def _to_tuple(x: Any) -> Any:
    return tuple(_to_tuple(v) for v in x) if isinstance(x, list | tuple) else x


def join_process_group(device: torch.device) -> tuple[torch.device, bool]:
    """Under torchrun (even with one process): join the process group (NCCL on GPUs, gloo on
    CPUs) and give this process its own GPU, as on N GPUs. Returns (device, distributed).
    Chapter 9."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if not (world > 1 or "TORCHELASTIC_RUN_ID" in os.environ):
        return device, False
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                device_id=device if device.type == "cuda" else None)
    return device, True


def failure_hint(exc: BaseException) -> str:
    """What to try for the failures a GPU run meets (they all arrive as RuntimeError), as a
    line to print after the error; empty if none applies. Chapter 9."""
    text = f"{type(exc).__name__} {exc}"
    if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in text:
        return ("\nhint: the GPU ran out of memory. Lower --batch-size and raise "
                "--accum-steps by the same factor (the same effective batch), or use --amp.")
    if "NCCL" in text or "ProcessGroup" in text or "DistBackendError" in text:
        return ("\nhint: the processes could not communicate (NCCL). Check that every process "
                "sees its GPU (CUDA_VISIBLE_DEVICES), or try one process first.")
    if any(word in text for word in ("dynamo", "inductor", "BackendCompilerFailed", "triton")):
        return "\nhint: torch.compile failed on this machine: run again without --compile."
    return ""
