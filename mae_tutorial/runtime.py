"""Where the code runs: device choice, seeds, and the compute budget the chapters use."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def pick_device(name: str | None = None) -> torch.device:
    """The requested device, or the best available one: cuda, then mps, then cpu."""
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


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices) for a reproducible run."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def budget(device: torch.device) -> str:
    """'full' on a GPU, 'quick' elsewhere; MAE_BUDGET=quick|full overrides (CI uses quick)."""
    forced = os.environ.get("MAE_BUDGET")
    if forced is not None:
        if forced not in ("quick", "full"):
            raise ValueError(f"MAE_BUDGET must be 'quick' or 'full', got {forced!r}")
        return forced
    return "full" if device.type == "cuda" else "quick"
