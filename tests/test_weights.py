import pickle

import pytest
import torch

import mae_tutorial as mt
from mae_tutorial import MaskedAutoencoderViT, from_hf_vitmae, load_checkpoint, to_hf_vitmae

TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4,
            decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)


def tiny(seed=0, **kw) -> MaskedAutoencoderViT:
    torch.manual_seed(seed)
    return MaskedAutoencoderViT(**{**TINY, **kw}).eval()


def test_round_trip_through_a_file(tmp_path):
    src, dst = tiny(0), tiny(1)
    imgs, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    torch.save({"model": src.state_dict(), "epoch": 3}, tmp_path / "ckpt.pth")
    assert load_checkpoint(dst, tmp_path / "ckpt.pth") == ([], [])
    with torch.no_grad():
        assert torch.equal(src(imgs, 0.75, noise)[1], dst(imgs, 0.75, noise)[1])
    torch.save(src.state_dict(), tmp_path / "bare.pth")  # a bare state dict loads too
    load_checkpoint(tiny(2), tmp_path / "bare.pth")


def test_mismatches_are_named():
    sd = tiny().state_dict()
    with pytest.raises(ValueError, match="missing keys: mask_token"):
        load_checkpoint(tiny(), {k: v for k, v in sd.items() if k != "mask_token"})
    with pytest.raises(ValueError, match="unexpected keys: head.weight"):
        load_checkpoint(tiny(), {**sd, "head.weight": torch.zeros(1)})
    shape_error = r"decoder_pred.weight: checkpoint \(192, 16\) vs model \(64, 16\)"
    with pytest.raises(ValueError, match=shape_error):
        load_checkpoint(tiny(in_chans=1), sd)


def test_partial_load_keeps_the_rest():
    sd = tiny(0).state_dict()
    encoder_only = {k: v for k, v in sd.items() if not k.startswith(("decoder", "mask_token"))}
    model = tiny(1)
    before = model.mask_token.clone()
    missing, unexpected = load_checkpoint(model, encoder_only, strict=False)
    assert "mask_token" in missing and unexpected == []
    assert torch.equal(model.mask_token, before)
    assert torch.equal(model.blocks[1].attn.qkv.weight, sd["blocks.1.attn.qkv.weight"])


def test_truncated_and_unsafe_files(tmp_path):
    torch.save(tiny().state_dict(), tmp_path / "ok.pth")
    data = (tmp_path / "ok.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="could not read the checkpoint .*cut.pth"):
        load_checkpoint(tiny(), tmp_path / "cut.pth")
    # a pickle that would run code is refused by weights_only loading
    (tmp_path / "evil.pth").write_bytes(pickle.dumps(print, protocol=2))
    with pytest.raises(ValueError, match="could not read the checkpoint"):
        load_checkpoint(tiny(), tmp_path / "evil.pth")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tiny(), tmp_path / "absent.pth")


@pytest.mark.parametrize("layout", ["v5", "v4"])
def test_hf_key_mapping_round_trip(layout):
    sd = tiny().state_dict()
    hf = to_hf_vitmae(sd, layout=layout)
    assert len(hf) == len(sd) + 2 * 2 * 3  # qkv weight and bias split in 3 blocks' worth
    q_name = {"v5": "vit.layers.1.attention.q_proj.weight",
              "v4": "vit.encoder.layer.1.attention.attention.query.weight"}[layout]
    assert torch.equal(hf[q_name], sd["blocks.1.attn.qkv.weight"][:32])
    back = from_hf_vitmae(hf)
    assert back.keys() == sd.keys() and all(torch.equal(back[k], sd[k]) for k in sd)


def test_hf_mapping_errors():
    with pytest.raises(KeyError, match="head.weight"):
        to_hf_vitmae({"head.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="layout"):
        to_hf_vitmae({}, layout="v3")
    with pytest.raises(KeyError, match="lacks one of query, key, value"):
        from_hf_vitmae({"vit.layers.0.attention.q_proj.weight": torch.zeros(1)})


# ---- official releases, offline: files written here in the official format


def _official_file(path, model, encoder_only):
    state = model.state_dict()
    if encoder_only:  # the mae_pretrain_vit_* files: cls, positions, patch embed, blocks, norm
        state = {k: v for k, v in state.items() if not k.startswith(("decoder", "mask_token"))}
    torch.save({"model": state}, path)
    return path


def test_official_registry():
    from mae_tutorial.weights import OFFICIAL_CHECKPOINTS as OC

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

    from mae_tutorial import weights

    def offline(url, filename):
        open(filename, "wb").write(b"half a file")
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(weights.urllib.request, "urlretrieve", offline)
    with pytest.raises(RuntimeError, match="Offline.*mae_visualize_vit_base.pth"):
        weights.download_checkpoint("mae_visualize_vit_base", tmp_path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="unknown official checkpoint"):
        weights.download_checkpoint("mae_vit_giant", tmp_path)


def test_checksums(tmp_path):
    import hashlib

    from mae_tutorial.weights import verify_checksum

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


def test_named_official_checkpoint_from_the_cache(tmp_path, monkeypatch):
    import hashlib

    from mae_tutorial import weights
    from mae_tutorial.evaluate import reconstruct

    src = mt.mae_from_preset("quick")
    path = _official_file(tmp_path / "mae_pretrain_tiny.pth", src, encoder_only=True)
    md5 = hashlib.md5(path.read_bytes()).hexdigest()[:6]
    monkeypatch.setitem(weights.OFFICIAL_CHECKPOINTS, "mae_pretrain_tiny",
                        weights.OfficialCheckpoint("http://unused", "quick", False, True, md5))
    model = weights.mae_from_checkpoint("mae_pretrain_tiny", root=tmp_path)
    assert model.encoder_only and model.norm_pix_loss
    assert torch.equal(model.blocks[3].mlp.fc2.weight, src.blocks[3].mlp.fc2.weight)
    with pytest.raises(ValueError, match="encoder-only"):
        reconstruct(model, torch.randn(1, 3, 32, 32))
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(ValueError, match="checksum mismatch"):
        weights.mae_from_checkpoint("mae_pretrain_tiny", root=tmp_path)


def test_files_in_official_and_trainer_format(tmp_path):
    from mae_tutorial.weights import mae_from_checkpoint

    src = mt.mae_from_preset("cifar_tiny")
    full = mae_from_checkpoint(_official_file(tmp_path / "full.pth", src, encoder_only=False))
    assert not full.encoder_only and full.config["embed_dim"] == 192  # preset found by shape
    assert all(torch.equal(v, src.state_dict()[k]) for k, v in full.state_dict().items())
    custom = MaskedAutoencoderViT(**TINY)
    torch.save({"model": custom.state_dict(), "model_config": custom.config}, tmp_path / "t.pth")
    assert mae_from_checkpoint(tmp_path / "t.pth").config == custom.config
    torch.save({"model": custom.state_dict()}, tmp_path / "unknown.pth")
    with pytest.raises(ValueError, match="cannot tell the architecture"):
        mae_from_checkpoint(tmp_path / "unknown.pth")


def test_classifier_from_mae_encoder():
    from mae_tutorial.weights import vit_from_mae

    mae = tiny(0)
    imgs = torch.randn(2, 3, 32, 32)
    vit = vit_from_mae(mae, num_classes=7, global_pool=False).eval()
    with torch.no_grad():
        assert torch.allclose(vit.forward_features(imgs), mae.encode(imgs)[:, 0], atol=1e-5)
    assert vit.head.weight.std() < 1e-4 and vit.head.out_features == 7
    pooled = vit_from_mae(mae, num_classes=7, global_pool=True, drop_path_rate=0.1)
    assert torch.equal(pooled.blocks[1].attn.qkv.weight, mae.blocks[1].attn.qkv.weight)
    assert not hasattr(pooled, "norm") and pooled.blocks[1].drop_path == 0.1
    wrong = mt.mae_from_preset("quick").state_dict()  # 128-d, built for a 32-d classifier
    with pytest.raises(ValueError, match=r"shapes differ for blocks.0.attn.proj.bias: ch"):
        vit_from_mae(wrong, num_classes=7, img_size=32, patch_size=8, embed_dim=32, depth=2,
                     num_heads=4)


def test_hf_config_round_trip():
    from mae_tutorial.weights import mae_kwargs_from_hf_config, vitmae_config_kwargs

    model = tiny(norm_pix_loss=True)
    assert mae_kwargs_from_hf_config(vitmae_config_kwargs(model)) == model.config
