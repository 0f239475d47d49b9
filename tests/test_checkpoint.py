import dataclasses
import pickle

import pytest
import torch

import mae_tutorial as mt
from mae_tutorial import MaskedAutoencoderViT, load_weights

TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4,
            decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)


def tiny(seed=0, **kw) -> MaskedAutoencoderViT:
    torch.manual_seed(seed)
    return MaskedAutoencoderViT(**{**TINY, **kw}).eval()


def test_round_trip_through_a_file(tmp_path):
    src, dst = tiny(0), tiny(1)
    imgs, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    torch.save({"model": src.state_dict(), "epoch": 3}, tmp_path / "ckpt.pth")
    assert load_weights(dst, tmp_path / "ckpt.pth") == ([], [])
    with torch.no_grad():
        assert torch.equal(src(imgs, 0.75, noise)[1], dst(imgs, 0.75, noise)[1])
    torch.save(src.state_dict(), tmp_path / "bare.pth")  # a bare state dict loads too
    load_weights(tiny(2), tmp_path / "bare.pth")


def test_mismatches_are_named():
    sd = tiny().state_dict()
    with pytest.raises(ValueError, match="missing keys: mask_token"):
        load_weights(tiny(), {k: v for k, v in sd.items() if k != "mask_token"})
    with pytest.raises(ValueError, match="unexpected keys: head.weight"):
        load_weights(tiny(), {**sd, "head.weight": torch.zeros(1)})
    shape_error = r"decoder_pred.weight: checkpoint \(192, 16\) vs model \(64, 16\)"
    with pytest.raises(ValueError, match=shape_error):
        load_weights(tiny(in_chans=1), sd)


def test_partial_load_keeps_the_rest():
    sd = tiny(0).state_dict()
    encoder_only = {k: v for k, v in sd.items() if not k.startswith(("decoder", "mask_token"))}
    model = tiny(1)
    before = model.mask_token.clone()
    missing, unexpected = load_weights(model, encoder_only, strict=False)
    assert "mask_token" in missing and unexpected == []
    assert torch.equal(model.mask_token, before)
    assert torch.equal(model.blocks[1].attn.qkv.weight, sd["blocks.1.attn.qkv.weight"])


def test_truncated_and_unsafe_files(tmp_path):
    torch.save(tiny().state_dict(), tmp_path / "ok.pth")
    data = (tmp_path / "ok.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="could not read the checkpoint .*cut.pth"):
        load_weights(tiny(), tmp_path / "cut.pth")
    # a pickle that would run code is refused by weights_only loading
    (tmp_path / "evil.pth").write_bytes(pickle.dumps(print, protocol=2))
    with pytest.raises(ValueError, match="could not read the checkpoint"):
        load_weights(tiny(), tmp_path / "evil.pth")
    with pytest.raises(FileNotFoundError):
        load_weights(tiny(), tmp_path / "absent.pth")


def _official_file(path, model, encoder_only):
    state = model.state_dict()
    if encoder_only:  # the mae_pretrain_vit_* files: cls, positions, patch embed, blocks, norm
        state = {k: v for k, v in state.items() if not k.startswith(("decoder", "mask_token"))}
    torch.save({"model": state}, path)
    return path


def test_named_official_checkpoint_from_the_cache(tmp_path, monkeypatch):
    import hashlib

    from mae_tutorial import checkpoint, official
    from mae_tutorial.evaluate import reconstruct

    src = mt.mae_from_preset("vit_mini_patch4")
    path = _official_file(tmp_path / "mae_pretrain_tiny.pth", src, encoder_only=True)
    md5 = hashlib.md5(path.read_bytes()).hexdigest()[:6]
    monkeypatch.setitem(official.OFFICIAL_CHECKPOINTS, "mae_pretrain_tiny",
                        official.OfficialCheckpoint("http://unused", "vit_mini_patch4", False,
                                                    True, md5))
    model = checkpoint.mae_from_checkpoint("mae_pretrain_tiny", root=tmp_path)
    assert model.encoder_only and model.norm_pix_loss
    assert torch.equal(model.blocks[3].mlp.fc2.weight, src.blocks[3].mlp.fc2.weight)
    with pytest.raises(ValueError, match="encoder-only"):
        reconstruct(model, torch.randn(1, 3, 32, 32))
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(ValueError, match="checksum mismatch"):
        checkpoint.mae_from_checkpoint("mae_pretrain_tiny", root=tmp_path)


def test_files_in_official_and_trainer_format(tmp_path):
    from mae_tutorial.checkpoint import mae_from_checkpoint

    src = mt.mae_from_preset("vit_tiny_patch4")
    full = mae_from_checkpoint(_official_file(tmp_path / "full.pth", src, encoder_only=False))
    assert not full.encoder_only and full.config.embed_dim == 192  # preset found by shape
    assert all(torch.equal(v, src.state_dict()[k]) for k, v in full.state_dict().items())
    custom = MaskedAutoencoderViT(**TINY)
    torch.save({"model": custom.state_dict(), "model_config": dataclasses.asdict(custom.config)},
               tmp_path / "t.pth")
    assert mae_from_checkpoint(tmp_path / "t.pth").config == custom.config
    torch.save({"model": custom.state_dict()}, tmp_path / "unknown.pth")
    with pytest.raises(ValueError, match="cannot tell the architecture"):
        mae_from_checkpoint(tmp_path / "unknown.pth")


def test_classifier_from_mae_encoder():
    from mae_tutorial.checkpoint import vit_from_mae

    mae = tiny(0)
    imgs = torch.randn(2, 3, 32, 32)
    vit = vit_from_mae(mae, num_classes=7, global_pool=False).eval()
    with torch.no_grad():
        cls = mae.forward_encoder(imgs)[0][:, 0]
        assert torch.allclose(vit.forward_features(imgs), cls, atol=1e-5)
    assert vit.head.weight.std() < 1e-4 and vit.head.out_features == 7
    pooled = vit_from_mae(mae, num_classes=7, global_pool=True, drop_path_rate=0.1)
    assert torch.equal(pooled.blocks[1].attn.qkv.weight, mae.blocks[1].attn.qkv.weight)
    assert "norm.weight" not in pooled.state_dict() and pooled.blocks[1].drop_path == 0.1
    wrong = mt.mae_from_preset("vit_mini_patch4").state_dict()  # 128-d, built for a 32-d classifier
    with pytest.raises(ValueError, match=r"shapes differ for blocks.0.attn.proj.bias: ch"):
        vit_from_mae(wrong, num_classes=7, img_size=32, patch_size=8, embed_dim=32, depth=2,
                     num_heads=4)
