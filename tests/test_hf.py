import pytest
import torch

from mae_tutorial import MaskedAutoencoderViT, from_hf_vitmae, to_hf_vitmae

TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4,
            decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)


def tiny(seed=0, **kw) -> MaskedAutoencoderViT:
    torch.manual_seed(seed)
    return MaskedAutoencoderViT(**{**TINY, **kw}).eval()

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


def test_hf_config_round_trip():
    from mae_tutorial.hf import mae_config_from_hf, vitmae_config_kwargs

    model = tiny(norm_pix_loss=True)
    assert mae_config_from_hf(vitmae_config_kwargs(model)) == model.config
