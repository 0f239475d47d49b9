import pytest
import torch
from torch import nn

from mae_tutorial import Attention, Block, PatchEmbed, VisionTransformer, patchify


def test_patch_embed_is_a_linear_layer_on_patches():
    torch.manual_seed(0)
    embed = PatchEmbed(img_size=32, patch_size=4, in_chans=3, embed_dim=24)
    imgs = torch.randn(2, 3, 32, 32)
    # conv weight (D, C, p, q) -> linear weight on channel-last patches (D, p*q*C)
    weight = embed.proj.weight.permute(0, 2, 3, 1).reshape(24, -1)
    as_linear = patchify(imgs, 4) @ weight.T + embed.proj.bias
    assert embed(imgs).shape == (2, 64, 24)
    assert torch.allclose(embed(imgs), as_linear, atol=1e-5)


def test_attention_equals_the_formula_written_out():
    torch.manual_seed(0)
    attn = Attention(dim=32, num_heads=4)
    x = torch.randn(2, 10, 32)
    q, k, v = attn.qkv(x).view(2, 10, 3, 4, 8).permute(2, 0, 3, 1, 4)  # (3, N, heads, L, d)
    weights = torch.softmax(q @ k.transpose(-2, -1) / 8**0.5, dim=-1)
    manual = attn.proj((weights @ v).transpose(1, 2).reshape(2, 10, 32))
    assert torch.allclose(attn(x), manual, atol=1e-6)
    assert torch.allclose(attn.attention_weights(x), weights, atol=1e-6)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 4, 10))


def test_attention_under_cpu_bf16_autocast_takes_the_written_out_path_and_agrees():
    torch.manual_seed(0)
    attn = Attention(dim=64, num_heads=4)
    x = torch.randn(8, 17, 64, requires_grad=True)
    reference = attn(x)
    reference.sum().backward()
    grad_fp32, x.grad = x.grad, None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attn(x)
    out.float().sum().backward()
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out.float(), reference, atol=0.05)  # bf16 keeps ~3 digits
    assert torch.allclose(x.grad, grad_fp32, atol=0.05)
    assert (out.float() - reference).abs().mean() < 0.01


def test_block_is_pre_norm_residual():
    torch.manual_seed(0)
    block = Block(dim=16, num_heads=2)
    x = torch.randn(3, 5, 16)
    h = x + block.attn(block.norm1(x))
    assert torch.allclose(block(x), h + block.mlp(block.norm2(h)), atol=1e-6)
    assert block.norm1.eps == 1e-6


def test_classifier_forward_shapes_and_pooling():
    torch.manual_seed(0)
    model = VisionTransformer(img_size=32, patch_size=4, num_classes=10, embed_dim=32, depth=2,
                              num_heads=4)
    imgs = torch.randn(4, 3, 32, 32)
    assert model.forward_encoder(imgs)[0].shape == (4, 65, 32)
    assert model(imgs).shape == (4, 10)
    with torch.no_grad():
        x = model.embed(imgs)
        x = torch.cat([(model.cls_token + model.pos_embed[:, :1]).expand(4, -1, -1), x], 1)
        for block in model.blocks:
            x = block(x)
        tokens = x  # after the blocks, before the final norm
        assert torch.allclose(model.forward_encoder(imgs)[0], model.norm(tokens), atol=1e-6)
    assert torch.allclose(model.forward_features(imgs), model.norm(tokens)[:, 0], atol=1e-6)
    pooled = VisionTransformer(img_size=32, patch_size=4, num_classes=10, embed_dim=32, depth=2,
                               num_heads=4, global_pool=True)
    assert "fc_norm.weight" in pooled.state_dict() and "norm.weight" not in pooled.state_dict()
    assert isinstance(pooled.norm, torch.nn.Identity)  # global pooling normalizes after pooling
    shared = {k: v for k, v in model.state_dict().items() if not k.startswith("norm.")}
    pooled.load_state_dict(shared, strict=False)
    expected = pooled.head(pooled.fc_norm(tokens[:, 1:].mean(1)))
    assert torch.allclose(pooled(imgs), expected, atol=1e-6)


def test_drop_path_is_identity_in_eval_and_unbiased_in_training():
    torch.manual_seed(0)
    model = VisionTransformer(img_size=32, patch_size=8, num_classes=3, embed_dim=16, depth=4,
                              num_heads=2, drop_path_rate=0.3)
    assert [b.drop_path for b in model.blocks] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    imgs = torch.randn(2, 3, 32, 32)
    model.eval()
    assert torch.equal(model(imgs), model(imgs))
    model.train()
    assert not torch.equal(model(imgs), model(imgs))
    from mae_tutorial.vit import drop_path
    x = torch.ones(20000, 4)
    kept = drop_path(x, 0.25, training=True)
    assert torch.allclose(kept[:, 0].unique(), torch.tensor([0.0, 1 / 0.75]))
    assert abs(kept.mean().item() - 1) < 0.03


def test_init_as_the_paper_code():
    torch.manual_seed(0)
    model = VisionTransformer(img_size=32, patch_size=4, embed_dim=64, depth=1, num_heads=4)
    fc1 = model.blocks[0].mlp.fc1
    bound = (6 / (fc1.in_features + fc1.out_features)) ** 0.5  # xavier-uniform
    assert fc1.weight.abs().max() <= bound and fc1.weight.abs().max() > 0.9 * bound
    assert torch.equal(fc1.bias, torch.zeros_like(fc1.bias))
    assert 0.01 < model.cls_token.std() < 0.03
    assert not any(p is model.pos_embed for p in model.parameters())  # fixed, not learned


def test_bad_inputs():
    embed = PatchEmbed(img_size=32, patch_size=4, in_chans=3, embed_dim=8)
    with pytest.raises(ValueError, match="expects 3 channels, got 1"):
        embed(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="expects 32x32 images, got 64x64"):
        embed(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="unsqueeze"):
        embed(torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="not divisible by patch_size"):
        PatchEmbed(img_size=30, patch_size=4)
    with pytest.raises(ValueError, match="num_heads"):
        Attention(dim=30, num_heads=4)
    assert isinstance(embed.proj, nn.Conv2d)
