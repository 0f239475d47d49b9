"""Our MAE against an independent implementation: Hugging Face's `ViTMAEForPreTraining`.

Weights move from our model into HF's (a freshly built HF model has zero position tables, cls
and mask tokens, so the other direction would test nothing). Both get the same images and the
same noise, so the same patches are removed; masks, predictions and losses must agree.
"""

import pytest
import torch

from mae_tutorial import MaskedAutoencoderViT, from_hf_vitmae, to_hf_vitmae
from mae_tutorial.hf import vitmae_config_kwargs

transformers = pytest.importorskip("transformers")

SIZES = {
    # the CIFAR-scale preset: 32x32 images, 8x8 grid of 4x4 patches, ViT-Tiny widths
    "cifar": dict(img_size=32, patch_size=4, embed_dim=192, depth=3, num_heads=3,
                  decoder_embed_dim=128, decoder_depth=2, decoder_num_heads=4),
    # the paper's geometry: 224x224 images, 14x14 grid of 16x16 patches, narrow for speed
    "paper_grid": dict(img_size=224, patch_size=16, embed_dim=64, depth=2, num_heads=4,
                       decoder_embed_dim=32, decoder_depth=2, decoder_num_heads=4),
}


def twin_models(size: str, norm_pix_loss: bool, mask_ratio: float, attn: str):
    torch.manual_seed(0)
    ours = MaskedAutoencoderViT(**SIZES[size], norm_pix_loss=norm_pix_loss).eval()
    config = transformers.ViTMAEConfig(**vitmae_config_kwargs(ours), mask_ratio=mask_ratio)
    assert config.layer_norm_eps == 1e-6  # HF's default is 1e-12; the paper's code uses 1e-6
    theirs = transformers.ViTMAEForPreTraining._from_config(config, attn_implementation=attn)
    theirs.load_state_dict(to_hf_vitmae(ours.state_dict()), strict=True)
    return ours, theirs.eval()


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("norm_pix_loss", [False, True])
@pytest.mark.parametrize("size", list(SIZES))
def test_same_mask_predictions_and_loss(size, norm_pix_loss, attn):
    mask_ratio = 0.75
    ours, theirs = twin_models(size, norm_pix_loss, mask_ratio, attn)
    img = SIZES[size]["img_size"]
    num_patches = (img // SIZES[size]["patch_size"]) ** 2
    torch.manual_seed(1)
    imgs, noise = torch.randn(4, 3, img, img), torch.rand(4, num_patches)
    with torch.no_grad():
        loss, pred, mask = ours(imgs, mask_ratio, noise)
        latent = ours.forward_encoder(imgs, mask_ratio, noise)[0]
        out = theirs(pixel_values=imgs, noise=noise)
        hidden = theirs.vit(pixel_values=imgs, noise=noise).last_hidden_state
    assert torch.equal(mask, out.mask)
    assert (latent - hidden).abs().max() <= 1e-5
    assert (pred - out.logits).abs().max() <= 1e-5
    assert abs(loss.item() - out.loss.item()) <= 1e-5
    assert pred.abs().max() > 0.1  # a real comparison, not of zeros


def test_a_different_mask_ratio_too():
    ours, theirs = twin_models("cifar", True, 0.5, "eager")
    imgs, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 64)
    with torch.no_grad():
        loss, pred, mask = ours(imgs, 0.5, noise)
        out = theirs(pixel_values=imgs, noise=noise)
    assert mask.sum() == 2 * 32 and torch.equal(mask, out.mask)
    assert (pred - out.logits).abs().max() <= 1e-5


def test_weights_come_back_unchanged():
    ours, theirs = twin_models("cifar", False, 0.75, "eager")
    back = from_hf_vitmae(theirs.state_dict())
    assert back.keys() == ours.state_dict().keys()
    assert all(torch.equal(back[k], v) for k, v in ours.state_dict().items())
