import dataclasses
import hashlib
import io
import json
import os
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

import mae_tutorial as mt
from mae_tutorial import official

BOOK = Path(__file__).resolve().parents[1] / "book"
# An official-format release at a small width: the ViT-L/16's names and grid (224x224,
# 16x16 patches), 32-d, two blocks and a one-block decoder, a few hundred kB.
SMALL = mt.mae.MAEConfig(embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=16,
                         decoder_depth=1, decoder_num_heads=2)


def test_official_registry():
    from mae_tutorial.official import OFFICIAL_CHECKPOINTS as OC

    assert OC["mae_pretrain_vit_base"].md5_prefix == "8cad7c"  # the official README's table
    assert OC["mae_pretrain_vit_large"].md5_prefix == "b8b06e"
    assert OC["mae_pretrain_vit_huge"].md5_prefix == "9bdbb0"
    assert not OC["mae_pretrain_vit_base"].has_decoder
    assert OC["mae_pretrain_vit_base_full"].has_decoder
    assert OC["mae_visualize_vit_large"].url.endswith("/visualize/mae_visualize_vit_large.pth")
    assert OC["mae_visualize_vit_base"].norm_pix_loss is False
    assert OC["mae_pretrain_vit_huge_full"].preset == "vit_huge_patch14"


def test_checksums(tmp_path):
    import hashlib

    from mae_tutorial.official import verify_checksum

    path = tmp_path / "w.pth"
    path.write_bytes(b"weights")
    md5 = hashlib.md5(b"weights").hexdigest()
    verify_checksum(path, md5[:6])
    with pytest.raises(ValueError, match="checksum mismatch.*expected 000000"):
        verify_checksum(path, "000000")
    verify_checksum(path, None)  # first use: the SHA-256 is recorded
    assert (tmp_path / "w.pth.sha256").read_text().strip() == hashlib.sha256(b"weights").hexdigest()
    verify_checksum(path, None)
    path.write_bytes(b"weightz")
    with pytest.raises(ValueError, match="no longer matches"):
        verify_checksum(path, None)


# ---- chapter 8's download, against a server on 127.0.0.1


@contextmanager
def serving(files: dict[str, bytes], cut_first: set[str] = frozenset(), slow: float = 0.0):
    """An HTTP server on 127.0.0.1 with `files` by path, honouring Range requests. The first
    answer for a path in `cut_first` announces the whole file but closes after half of it;
    `slow` seconds of silence before each answer. Yields (base URL, log of requests)."""
    log: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the name http.server calls)
            log.append((self.path, self.headers.get("Range")))
            time.sleep(slow)
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start = 0
            if self.headers.get("Range"):
                start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            if self.path in cut_first and [p for p, _ in log].count(self.path) == 1:
                self.wfile.write(body[start:len(body) // 2])
                self.close_connection = True
                return
            self.wfile.write(body[start:])

        def log_message(self, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads, server.block_on_close = True, False
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", log
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _release_bytes(seed: int = 0) -> tuple[bytes, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    state = mt.build_mae(SMALL).state_dict()
    buffer = io.BytesIO()
    torch.save({"model": state}, buffer)  # as the official files: the weights under "model"
    return buffer.getvalue(), state


def _point_at(monkeypatch, base: str, md5: dict[str, str | None] | None = None) -> None:
    """The two ViT-L releases chapter 8 loads, served from `base`, with the small width."""
    monkeypatch.setitem(mt.mae.MODEL_PRESETS, "vit_large_patch16", SMALL)
    for name in ("mae_visualize_vit_large", "mae_pretrain_vit_large_full"):
        entry = official.OFFICIAL_CHECKPOINTS[name]
        monkeypatch.setitem(official.OFFICIAL_CHECKPOINTS, name, dataclasses.replace(
            entry, url=f"{base}/{name}.pth", md5_prefix=(md5 or {}).get(name)))


def test_an_interrupted_download_continues_and_is_verified(tmp_path, monkeypatch):
    body, state = _release_bytes()
    name = "mae_visualize_vit_large"
    with serving({f"/{name}.pth": body}, cut_first={f"/{name}.pth"}) as (base, log):
        _point_at(monkeypatch, base, md5={name: hashlib.md5(body).hexdigest()[:6]})
        with pytest.raises(RuntimeError, match=r"bytes received are kept in .*\.part"):
            official.download_checkpoint(name, tmp_path, timeout=5, progress=False)
        part = tmp_path / f"{name}.pth.part"
        assert part.stat().st_size == len(body) // 2 and not (tmp_path / f"{name}.pth").exists()
        path = official.download_checkpoint(name, tmp_path, timeout=5, progress=True)
        assert log == [(f"/{name}.pth", None), (f"/{name}.pth", f"bytes={len(body) // 2}-")]
        assert path.read_bytes() == body and not part.exists()
        assert official.download_checkpoint(name, tmp_path, timeout=5) == path
        assert len(log) == 2  # kept: not fetched again
        model = mt.mae_from_checkpoint(name, root=tmp_path)  # the safe read, then the load
    assert not model.encoder_only and model.config == SMALL
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_a_partial_file_the_server_cannot_continue_is_downloaded_again(tmp_path, monkeypatch):
    body, _ = _release_bytes()
    name = "mae_pretrain_vit_large_full"  # no published checksum: a SHA-256 is recorded
    part = tmp_path / f"{name}.pth.part"
    with serving({f"/{name}.pth": body}) as (base, log):
        _point_at(monkeypatch, base)
        part.write_bytes(body + b"more than the file")  # past its end: the server says 416
        path = official.download_checkpoint(name, tmp_path, timeout=5, progress=False)
    assert path.read_bytes() == body and [r for _, r in log] == [f"bytes={len(body) + 18}-", None]
    assert (tmp_path / f"{name}.pth.sha256").read_text().strip() == hashlib.sha256(
        body).hexdigest()


def test_a_wrong_file_is_deleted_and_a_silent_or_absent_server_fails_in_time(tmp_path,
                                                                             monkeypatch):
    body, _ = _release_bytes()
    name = "mae_visualize_vit_large"
    with serving({f"/{name}.pth": body}) as (base, _):
        _point_at(monkeypatch, base, md5={name: "000000"})
        with pytest.raises(ValueError, match="not the official file.*deleted"):
            official.download_checkpoint(name, tmp_path, timeout=5, progress=False)
    assert list(tmp_path.iterdir()) == []
    with serving({f"/{name}.pth": body}, slow=3.0) as (base, _):
        _point_at(monkeypatch, base)
        start = time.perf_counter()
        with pytest.raises(RuntimeError, match="(?i)timed out.*Offline"):
            official.download_checkpoint(name, tmp_path, timeout=0.5, progress=False)
        assert time.perf_counter() - start < 2.5
    _point_at(monkeypatch, base)  # the server is gone: nothing listens there now
    with pytest.raises(RuntimeError, match="could not download.*Offline"):
        official.download_checkpoint(name, tmp_path, timeout=5, progress=False)
    with pytest.raises(ValueError, match="unknown official checkpoint"):
        official.download_checkpoint("mae_vit_giant", tmp_path)


def _chapter8_download_cells() -> str:
    cells = {c.get("id"): c for c in json.loads(
        (BOOK / "08_pretrained_mae.ipynb").read_text())["cells"]}
    return "".join(cells["c09"]["source"]) + "\n" + "".join(cells["c09-1"]["source"])


def test_chapter_8_loads_the_releases_and_survives_a_bad_one(tmp_path, monkeypatch, capsys):
    """The page's own download cells, run against the local server: both releases load;
    then a damaged file is caught by the cell (it raises ValueError), not by the reader."""
    body, state = _release_bytes()
    files = {"/mae_visualize_vit_large.pth": body, "/mae_pretrain_vit_large_full.pth": body}
    monkeypatch.chdir(tmp_path)  # the cell's data/checkpoints
    monkeypatch.delenv("MAE_OFFLINE", raising=False)
    page = {"mt": mt, "os": os, "Path": Path, "device": torch.device("cpu"), "weights_gb": 1.3}
    with serving(files) as (base, _):
        _point_at(monkeypatch, base)
        exec(_chapter8_download_cells(), page)
    assert set(page["official"]) == {"pixels", "normalized"}
    assert page["official"]["normalized"].norm_pix_loss
    assert not page["official"]["pixels"].norm_pix_loss
    assert torch.equal(page["official"]["pixels"].cls_token, state["cls_token"])
    assert "loaded mae_visualize_vit_large, mae_pretrain_vit_large_full" in capsys.readouterr().out

    for kept in (tmp_path / "data/checkpoints").iterdir():
        kept.unlink()
    files["/mae_pretrain_vit_large_full.pth"] = body[: len(body) // 3]  # served whole, damaged
    page = {"mt": mt, "os": os, "Path": Path, "device": torch.device("cpu"), "weights_gb": 1.3}
    with serving(files) as (base, _):
        _point_at(monkeypatch, base)
        exec(_chapter8_download_cells(), page)
    assert page["official"] == {}
    assert "offline (ValueError: could not read the checkpoint" in capsys.readouterr().out
