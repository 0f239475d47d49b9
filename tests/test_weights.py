import pickle

import pytest
import torch

from mae_tutorial import MaskedAutoencoderViT, from_hf_vitmae, load_checkpoint, to_hf_vitmae

TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4,
            decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)


def tiny(seed=0, **kw):
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
