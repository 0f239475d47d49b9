import pytest
import torch

import mae_tutorial as mt
from mae_tutorial import MODEL_PRESETS, MaskedAutoencoderViT, mae_from_preset, patchify

TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4,
            decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)


def tiny(**kw) -> MaskedAutoencoderViT:
    torch.manual_seed(0)
    return MaskedAutoencoderViT(**{**TINY, **kw}).eval()


def test_shapes_through_the_model():
    model = tiny()
    imgs = torch.randn(3, 3, 32, 32)
    latent, mask, ids_restore = model.forward_encoder(imgs, 0.75)
    assert latent.shape == (3, 1 + 4, 32)  # cls + 25% of 16 patches
    assert mask.shape == ids_restore.shape == (3, 16)
    pred = model.forward_decoder(latent, ids_restore)
    assert pred.shape == (3, 16, 8 * 8 * 3)
    loss, pred2, mask2 = model(imgs, 0.75, noise=torch.rand(3, 16))
    assert loss.ndim == 0 and pred2.shape == pred.shape and mask2.sum() == 3 * 12


def test_official_state_dict_keys():
    model = tiny(depth=1)
    block = [f"{n}.{p}" for n in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")
             for p in ("weight", "bias")]
    expected = {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
                "norm.weight", "norm.bias", "mask_token", "decoder_pos_embed",
                "decoder_embed.weight", "decoder_embed.bias", "decoder_norm.weight",
                "decoder_norm.bias", "decoder_pred.weight", "decoder_pred.bias"}
    expected |= {f"blocks.0.{k}" for k in block} | {f"decoder_blocks.0.{k}" for k in block}
    assert set(model.state_dict()) == expected


def test_encoder_never_sees_removed_patches():
    model = tiny()
    imgs = torch.randn(2, 3, 32, 32)
    noise = torch.rand(2, 16)
    with torch.no_grad():
        loss, pred, mask = model(imgs, 0.75, noise)
        latent = model.forward_encoder(imgs, 0.75, noise)[0]
        # scribble over every removed patch
        patches = patchify(imgs, 8)
        scribbled = patches + 5 * mask[..., None] * torch.randn_like(patches)
        imgs2 = scribbled.view(2, 4, 4, 8, 8, 3).permute(0, 5, 1, 3, 2, 4).reshape(2, 3, 32, 32)
        assert torch.equal(patchify(imgs2, 8), scribbled)
        loss2, pred2, _ = model(imgs2, 0.75, noise)
        latent2 = model.forward_encoder(imgs2, 0.75, noise)[0]
    assert torch.equal(latent, latent2) and torch.equal(pred, pred2)
    assert loss2 > loss + 1  # only the target changed


def test_decoder_gets_mask_token_at_removed_positions():
    model = tiny()
    imgs, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    seen = {}
    model.decoder_blocks[0].register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))
    with torch.no_grad():
        latent, mask, ids_restore = model.forward_encoder(imgs, 0.75, noise)
        model.forward_decoder(latent, ids_restore)
        tokens = seen["x"][:, 1:] - model.decoder_pos_embed[:, 1:]  # (N, L, Dd) without positions
        embedded = model.decoder_embed(latent[:, 1:])  # visible tokens, in shuffled order
    ids_keep = torch.argsort(noise, dim=1)[:, :4]
    for i in range(2):
        for j in range(16):
            if mask[i, j]:
                assert torch.allclose(tokens[i, j], model.mask_token[0, 0], atol=1e-6)
        assert torch.allclose(tokens[i, ids_keep[i]], embedded[i], atol=1e-6)


@pytest.mark.parametrize("norm_pix_loss", [False, True])
def test_loss_is_mse_on_removed_patches_only(norm_pix_loss):
    model = tiny(norm_pix_loss=norm_pix_loss)
    imgs = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        loss, pred, mask = model(imgs, 0.75)
        target = patchify(imgs, 8)
        if norm_pix_loss:
            target = (target - target.mean(-1, keepdim=True)) / (
                target.var(-1, keepdim=True) + 1e-6).sqrt()
        removed = mask.bool()
        assert torch.allclose(loss, ((pred - target) ** 2)[removed].mean(), atol=1e-6)
        # changing the prediction of a visible patch leaves the loss unchanged
        pred_visible = pred + 3 * (~removed)[..., None]
        assert torch.equal(model.forward_loss(imgs, pred_visible, mask), loss)
        pred_removed = pred + 3 * removed[..., None]
        assert model.forward_loss(imgs, pred_removed, mask) > loss


def test_loss_on_all_scores_every_patch_the_wrong_variant():
    model = tiny()
    imgs = torch.rand(2, 3, 32, 32)
    noise = torch.rand(2, 16)
    with torch.no_grad():
        loss, pred, mask = model(imgs, 0.75, noise)
        loss_all, pred_all, mask_all = model(imgs, 0.75, noise, loss_on_all=True)
        assert torch.equal(pred, pred_all) and torch.equal(mask, mask_all)
        every = ((pred - model.patch_targets(imgs)) ** 2).mean()
        assert torch.allclose(loss_all, every, atol=1e-6) and not torch.isclose(loss_all, loss)


def test_norm_pix_target_is_standardized_per_patch():
    model = tiny(norm_pix_loss=True)
    target = model.patch_targets(torch.rand(2, 3, 32, 32) * 4 + 7)
    assert torch.allclose(target.mean(-1), torch.zeros(2, 16), atol=1e-5)
    assert torch.allclose(target.var(-1), torch.ones(2, 16), atol=1e-3)


def test_zero_mask_ratio_sees_everything_and_has_zero_loss():
    model = tiny()
    loss, _, mask = model(torch.randn(1, 3, 32, 32), mask_ratio=0.0)
    assert mask.sum() == 0 and loss == 0


def test_gradients_reach_every_parameter():
    model = tiny().train()
    loss, _, _ = model(torch.randn(2, 3, 32, 32))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


def test_presets_and_paper_sizes():
    # encoder parameters, in millions, as the paper reports them (ViT-B 86, ViT-L 304, ViT-H 632),
    # counted with the fixed position table as timm does
    paper = {"vit_base_patch16": 86, "vit_large_patch16": 304, "vit_huge_patch14": 632}
    for name, millions in paper.items():
        with torch.device("meta"):
            model = mae_from_preset(name)
        encoder = sum(p.numel() for n, p in model.named_parameters()
                      if not n.startswith(("decoder", "mask_token")))
        encoder += model.pos_embed.numel()
        assert abs(encoder / 1e6 - millions) / millions < 0.01, (name, encoder)
        assert model.config.decoder_embed_dim == 512 and model.config.decoder_depth == 8
    quick = mae_from_preset("vit_mini_patch4", norm_pix_loss=True)
    assert quick.norm_pix_loss and quick.num_patches == 64
    assert MODEL_PRESETS["vit_tiny_patch4"].embed_dim == 192
    assert MODEL_PRESETS["vit_tiny_patch4"].depth == 12
    assert MODEL_PRESETS["vit_large_patch16"] == mt.MAEConfig()  # the defaults: ViT-L/16
    custom = MODEL_PRESETS["vit_mini_patch4"].replace(decoder_depth=2)
    assert custom.decoder_depth == 2 and MODEL_PRESETS["vit_mini_patch4"].decoder_depth == 1
    assert MaskedAutoencoderViT(custom).config == custom


def test_bad_inputs():
    model = tiny()
    with pytest.raises(ValueError, match="unknown model preset 'vit_giant'"):
        mae_from_preset("vit_giant")
    with pytest.raises(ValueError, match="MAEConfig has no field \\['decoder_layers'\\]"):
        mae_from_preset("vit_mini_patch4", decoder_layers=2)
    with pytest.raises(ValueError, match="build_mae"):
        MaskedAutoencoderViT(MODEL_PRESETS["vit_mini_patch4"], encoder_mask_token=True)
    with pytest.raises(ValueError, match="not divisible by patch_size"):
        MaskedAutoencoderViT(img_size=30, patch_size=8)
    with pytest.raises(ValueError, match="expects 3 channels, got 4"):
        model(torch.randn(1, 4, 32, 32))
    with pytest.raises(ValueError, match="rank|shape"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        model(torch.randn(1, 3, 32, 32), mask_ratio=1.0)
    with pytest.raises(ValueError, match="leaves no visible patch"):
        model(torch.randn(1, 3, 32, 32), mask_ratio=0.97)
    with pytest.raises(ValueError, match="noise must have shape"):
        model(torch.randn(2, 3, 32, 32), noise=torch.rand(2, 64))


def test_encoder_mask_token_ablation_sees_every_position_and_trains():
    """Table 1c's "encoder w/ [M]": removed patches are replaced by a learned token (with its
    position) instead of dropped, so the encoder runs on all L tokens; the loss still scores
    only the removed patches, and the encoder exports to a classifier without the token."""
    torch.manual_seed(0)
    model = mt.mae_from_preset("vit_mini_patch4", encoder_mask_token=True)
    plain = mt.mae_from_preset("vit_mini_patch4")
    assert isinstance(model, mt.EncoderMaskTokenMAE) and type(plain) is MaskedAutoencoderViT
    imgs = torch.randn(2, 3, 32, 32)
    noise = torch.rand(2, 64)
    latent, mask, _ = model.forward_encoder(imgs, 0.75, noise)
    assert latent.shape == (2, 1 + 64, 128)  # every position, not 1 + 16
    assert plain.forward_encoder(imgs, 0.75, noise)[0].shape == (2, 1 + 16, 128)
    assert torch.equal(mask, plain.forward_encoder(imgs, 0.75, noise)[1])  # the same mask
    loss, pred, _ = model(imgs, 0.75, noise)
    assert pred.shape == (2, 64, 48) and torch.isfinite(loss)
    loss.backward()
    assert model.encoder_mask_token.grad.abs().sum() > 0  # the token is learned
    # a removed patch's pixels cannot reach the encoder: changing them changes nothing there
    hidden = mask[0].bool().nonzero()[0].item()
    row, col = divmod(hidden, 8)
    changed = imgs.clone()
    changed[0, :, 4 * row:4 * row + 4, 4 * col:4 * col + 4] += 5.0
    with torch.no_grad():
        a = model.forward_encoder(imgs, 0.75, noise)[0]
        b = model.forward_encoder(changed, 0.75, noise)[0]
    assert torch.allclose(a, b, atol=1e-6)
    vit = mt.checkpoint.vit_from_mae(model, num_classes=10)
    assert vit(imgs).shape == (2, 10)
