"""The official MAE releases (He et al., github.com/facebookresearch/mae), chapter 8: their
addresses, what each holds, and a verified download."""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
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


def _fetch(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Download `url` into `part`, continuing a partial file left by an interrupted download
    (an HTTP Range request; a server that ignores it sends the whole file, which replaces
    the partial one). Every connection and read gives up after `timeout` seconds of silence.
    A progress bar goes to stderr."""
    from tqdm import tqdm

    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not have:  # 416: the range starts past the end of the file
            raise
        part.unlink()  # the partial file cannot be continued: start again
        have, response = 0, urllib.request.urlopen(url, timeout=timeout)
    with response:
        if have and response.status != 206:  # the whole file came back: start again
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with open(part, "ab" if have else "wb") as f, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                desc=part.name.removesuffix(".part"), disable=not progress,
                mininterval=1.0) as bar:
            while chunk := response.read(1 << 20):
                f.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:  # the connection closed early
        raise ConnectionError(f"the download stopped at {size:,} of {total:,} bytes")


def download_checkpoint(name: str, root: str | os.PathLike = "data/checkpoints", *,
                        timeout: float = 30.0, progress: bool = True) -> Path:
    """The path of an official checkpoint, downloaded into `root` on first use and verified
    (chapter 8). The download goes into a `.part` file, renamed only once it is complete and
    its checksum matches, so an interrupted download is never taken for a whole one; the next
    call continues the `.part` file where it stopped. `timeout`: seconds without an answer
    before giving up (offline, the call fails within them). A file that fails its checksum
    raises ValueError; a download that fails, RuntimeError."""
    if name not in OFFICIAL_CHECKPOINTS:
        raise ValueError(f"unknown official checkpoint {name!r}; choose one of "
                         f"{sorted(OFFICIAL_CHECKPOINTS)}")
    entry = OFFICIAL_CHECKPOINTS[name]
    path = Path(root) / f"{name}.pth"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(path.name + ".part")
        try:
            _fetch(entry.url, part, timeout, progress)
        except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets
            kept = (f"; the {part.stat().st_size:,} bytes received are kept in {part} and "
                    "the next call continues from there") if part.exists() else ""
            raise RuntimeError(
                f"could not download {entry.url} ({type(exc).__name__}: {exc}){kept}. "
                f"Offline? Download it elsewhere and put it at {path.resolve()}, or pass "
                "the file's path instead of its name") from exc
        if entry.md5_prefix is not None:  # checked before the rename: a bad file is dropped
            digest = _file_digest(part, "md5")
            if not digest.startswith(entry.md5_prefix):
                part.unlink()
                raise ValueError(f"the download of {entry.url} is not the official file: MD5 "
                                 f"{digest[:12]}..., published {entry.md5_prefix}...; it was "
                                 "deleted. Call again to download it anew")
        os.replace(part, path)
        if entry.md5_prefix is not None:
            return path
    verify_checksum(path, entry.md5_prefix)  # a kept file; or the first SHA-256 record
    return path
