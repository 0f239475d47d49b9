import pytest


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


def test_download_offline_fails_clearly_and_leaves_nothing(tmp_path, monkeypatch):
    import urllib.error

    from mae_tutorial import official

    def offline(url, filename):
        open(filename, "wb").write(b"half a file")
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(official.urllib.request, "urlretrieve", offline)
    with pytest.raises(RuntimeError, match="Offline.*mae_visualize_vit_base.pth"):
        official.download_checkpoint("mae_visualize_vit_base", tmp_path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="unknown official checkpoint"):
        official.download_checkpoint("mae_vit_giant", tmp_path)


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
