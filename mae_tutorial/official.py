"""The official MAE releases (He et al., github.com/facebookresearch/mae), chapter 8: their
addresses, what each holds, and a verified download."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class OfficialCheckpoint:
    """One official release: where it is and what it holds. Chapter 8."""

    url: str
    preset: str  # the architecture, a name of mae_tutorial.mae.MODEL_PRESETS
    has_decoder: bool  # False: encoder only, it cannot reconstruct
    norm_pix_loss: bool  # the target the decoder was trained for
    md5_prefix: str | None  # as published in the official README (None: not published)


_BASE_URL = "https://dl.fbaipublicfiles.com/mae"
OFFICIAL_CHECKPOINTS: dict[str, OfficialCheckpoint] = {
    "mae_pretrain_vit_base": OfficialCheckpoint(
        f"{_BASE_URL}/pretrain/mae_pretrain_vit_base.pth", "vit_base_patch16", False, True,
        "8cad7c"),
    "mae_pretrain_vit_large": OfficialCheckpoint(
        f"{_BASE_URL}/pretrain/mae_pretrain_vit_large.pth", "vit_large_patch16", False, True,
        "b8b06e"),
    "mae_pretrain_vit_huge": OfficialCheckpoint(
        f"{_BASE_URL}/pretrain/mae_pretrain_vit_huge.pth", "vit_huge_patch14", False, True,
        "9bdbb0"),
    "mae_pretrain_vit_base_full": OfficialCheckpoint(
        f"{_BASE_URL}/pretrain/mae_pretrain_vit_base_full.pth", "vit_base_patch16", True, True,
        None),
    "mae_pretrain_vit_large_full": OfficialCheckpoint(
        f"{_BASE_URL}/pretrain/mae_pretrain_vit_large_full.pth", "vit_large_patch16", True,
        True, None),
    "mae_pretrain_vit_huge_full": OfficialCheckpoint(
        f"{_BASE_URL}/pretrain/mae_pretrain_vit_huge_full.pth", "vit_huge_patch14", True, True,
        None),
    "mae_visualize_vit_base": OfficialCheckpoint(
        f"{_BASE_URL}/visualize/mae_visualize_vit_base.pth", "vit_base_patch16", True, False,
        None),
    "mae_visualize_vit_large": OfficialCheckpoint(
        f"{_BASE_URL}/visualize/mae_visualize_vit_large.pth", "vit_large_patch16", True, False,
        None),
}


def _file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_checksum(path: str | os.PathLike, md5_prefix: str | None) -> None:
    """Check a downloaded file. With a published MD5 prefix, the file must match it. Without
    one, the SHA-256 is recorded beside the file on first use (`<file>.sha256`) and every later
    use must match that record, so a file that changes on disk is caught. Chapter 8."""
    path = Path(path)
    if md5_prefix is not None:
        digest = _file_digest(path, "md5")
        if not digest.startswith(md5_prefix):
            raise ValueError(f"checksum mismatch for {path}: MD5 {digest[:12]}..., expected "
                             f"{md5_prefix}... (the published value). The file is damaged or "
                             "not the official one: delete it and download it again")
        return
    record = path.with_name(path.name + ".sha256")
    digest = _file_digest(path, "sha256")
    if not record.exists():
        record.write_text(digest + "\n")
        return
    if record.read_text().strip() != digest:
        raise ValueError(f"checksum mismatch for {path}: its SHA-256 no longer matches the one "
                         f"recorded in {record} when it was first downloaded. The file changed "
                         "on disk: delete both files and download it again")


def download_checkpoint(name: str, root: str | os.PathLike = "data/checkpoints") -> Path:
    """The path of an official checkpoint, downloaded into `root` on first use (atomically:
    a `.part` file renamed when complete) and verified. Chapter 8."""
    if name not in OFFICIAL_CHECKPOINTS:
        raise ValueError(f"unknown official checkpoint {name!r}; choose one of "
                         f"{sorted(OFFICIAL_CHECKPOINTS)}")
    entry = OFFICIAL_CHECKPOINTS[name]
    path = Path(root) / f"{name}.pth"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        try:
            urllib.request.urlretrieve(entry.url, tmp)
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            raise RuntimeError(
                f"could not download {entry.url} ({exc}). Offline? Download it elsewhere and "
                f"put it at {path.resolve()}, or pass the file's path instead of its name"
            ) from exc
        os.replace(tmp, path)
    verify_checksum(path, entry.md5_prefix)
    return path
