"""mae_tutorial.contrastive: MoCo v3, the contrastive baseline trained in MAE's budget."""

import dataclasses
import math

import pytest
import torch

from mae_tutorial import contrastive as con
from mae_tutorial.config import config_from_preset
from mae_tutorial.data import IMAGENET_MEAN, IMAGENET_STD, denormalize
from mae_tutorial.mae import mae_from_preset


def test_info_nce_on_hand_made_pairs():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # each query's positive is its own row of k: cosine 1 against it, 0 against the other
    expected = math.log(1 + math.exp(-1 / 0.2)) * 2 * 0.2
    assert con.info_nce(q, q.clone(), 0.2).item() == pytest.approx(expected, rel=1e-6)
    # lengths do not matter (cosine similarity); swapping the keys makes every pair wrong
    assert con.info_nce(3 * q, 0.5 * q, 0.2).item() == pytest.approx(expected, rel=1e-6)
    swapped = con.info_nce(q, q.flip(0), 0.2).item()
    assert swapped == pytest.approx((1 / 0.2 + math.log(1 + math.exp(-1 / 0.2))) * 0.4,
                                    rel=1e-6)
    # random pairs of a batch of 64 land near log(64) * 2 * tau
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 32, generator=g), torch.randn(64, 32, generator=g)
    assert con.info_nce(a, b, 1.0).item() == pytest.approx(math.log(64) * 2, rel=0.05)


def test_momentum_rises_from_its_base_to_one():
    values = [con.momentum_at(s, 100, 0.99) for s in range(101)]
    assert values[0] == pytest.approx(0.99) and values[-1] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(values, values[1:], strict=False))


def small_moco() -> con.MoCoV3:
    torch.manual_seed(0)
    return con.MoCoV3(mae_from_preset("vit_mini_patch4"), dim=16, hidden=32)


def test_the_momentum_encoder_starts_equal_and_moves_by_m():
    model = small_moco()
    online = dict(model.encoder.named_parameters())
    moving = dict(model.momentum_encoder.named_parameters())
    assert all(torch.equal(online[n], moving[n]) for n in online)
    assert not any(p.requires_grad for p in model.momentum_encoder.parameters())
    before = {n: p.clone() for n, p in moving.items()}
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(1.0)
    model.update_momentum(0.75)
    for n, p in moving.items():
        assert torch.allclose(p, 0.75 * before[n] + 0.25 * online[n], atol=1e-6), n
    model.projector[1].running_mean.fill_(3.0)  # BatchNorm statistics are copied, not averaged
    model.update_momentum(0.9)
    assert torch.equal(model.momentum_projector[1].running_mean,
                       model.projector[1].running_mean)


def test_the_loss_trains_the_query_side_only():
    model = small_moco().train()
    g = torch.Generator().manual_seed(1)
    v1, v2 = torch.randn(8, 3, 32, 32, generator=g), torch.randn(8, 3, 32, 32, generator=g)
    loss = model(v1, v2)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    for part in (model.encoder.blocks, model.projector, model.predictor):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    assert all(p.grad is None for p in model.momentum_encoder.parameters())
    assert all(p.grad is None for p in model.momentum_projector.parameters())
    assert model.embed(model.encoder, v1).shape == (8, model.encoder.config.embed_dim)


def test_views_are_reproducible_and_differ():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=g)
    views = con.ContrastiveViews(IMAGENET_MEAN, IMAGENET_STD)
    a1, a2 = views(images, torch.Generator().manual_seed(5))
    b1, b2 = views(images, torch.Generator().manual_seed(5))
    assert a1.shape == a2.shape == (6, 3, 32, 32)
    assert torch.equal(a1, b1) and torch.equal(a2, b2)  # the draws come from the generator
    assert not torch.allclose(a1, a2)  # two views of one image are two draws
    grey = con.ContrastiveViews(IMAGENET_MEAN, IMAGENET_STD, p_gray=1.0)
    pixels = denormalize(grey.view(images, torch.Generator().manual_seed(2)))
    assert torch.allclose(pixels[:, 0], pixels[:, 1], atol=1e-5)
    assert torch.allclose(pixels[:, 1], pixels[:, 2], atol=1e-5)


def test_color_jitter_factors():
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(4, 3, 8, 8, generator=g)
    assert torch.allclose(con.color_jitter(imgs, torch.ones(4, 3)), imgs, atol=1e-6)
    dark = con.color_jitter(imgs, torch.tensor([[0.0, 1.0, 1.0]] * 4))
    assert dark.abs().max() < 1e-6  # brightness 0: black
    flat = con.color_jitter(imgs, torch.tensor([[1.0, 0.0, 1.0]] * 4))  # contrast 0: one grey
    assert torch.allclose(flat, flat.mean(dim=(1, 2, 3), keepdim=True).expand_as(flat),
                          atol=1e-6)
    washed = con.color_jitter(imgs, torch.tensor([[1.0, 1.0, 0.0]] * 4))  # saturation 0
    assert torch.allclose(washed, con.grayscale(imgs), atol=1e-6)


def test_pretraining_runs_learns_and_repeats(tmp_path):
    cfg = config_from_preset("quick", synthetic_size=256, batch_size=32, max_steps=6,
                             device="cpu", data_root=str(tmp_path), amp="off")
    model, log = con.pretrain_contrastive(cfg, log_every=2)
    assert [r["step"] for r in log] == [2, 4, 6]
    assert all(math.isfinite(r["loss"]) for r in log)
    still, _ = con.pretrain_contrastive(dataclasses.replace(cfg, base_lr=0.0), log_every=2)
    torch.manual_seed(cfg.seed)  # the initial ViT: MAE's of the same seed
    init = mae_from_preset("vit_mini_patch4").state_dict()
    assert all(torch.equal(v, still.encoder.state_dict()[k]) for k, v in init.items())
    trained = model.encoder.state_dict()
    assert not all(torch.equal(v, trained[k]) for k, v in init.items())
    _, again = con.pretrain_contrastive(cfg, log_every=2)
    assert [r["loss"] for r in again] == [r["loss"] for r in log]  # one seed, one run


def test_contrastive_once_trains_once_then_loads(tmp_path, monkeypatch):
    from mae_tutorial.lab import cache as lab_cache

    small = dict(synthetic_size=256, batch_size=32, max_steps=4, device="cpu",
                 data_root=str(tmp_path / "data"), amp="off")
    encoder, run = lab_cache.contrastive_once(cache=tmp_path / "cache", **small)
    assert run.name.startswith("contrastive-quick-") and (run / "metrics.jsonl").exists()
    assert encoder.encoder_only and not encoder.training  # a ViT, no decoder
    saved = torch.load(run / "checkpoint.pth", map_location="cpu", weights_only=True)
    assert saved["config"]["base_lr"] == lab_cache.CONTRASTIVE_LR  # the measured lr

    def never(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(lab_cache, "pretrain_contrastive", never)
    again, same = lab_cache.contrastive_once(cache=tmp_path / "cache", **small)
    assert same == run
    vit = {k: v for k, v in encoder.state_dict().items()
           if not k.startswith(("decoder", "mask_token"))}  # a decoder is built, untrained
    assert vit and all(torch.equal(v, again.state_dict()[k]) for k, v in vit.items())
    with pytest.raises(AssertionError, match="trained again"):  # another seed is another run
        lab_cache.contrastive_once(cache=tmp_path / "cache", **small, seed=1)
