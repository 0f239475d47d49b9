from pathlib import Path

import pytest
import torch

import mae_tutorial as mt
from mae_tutorial import evaluate as ev
from mae_tutorial import finetune as ft
from mae_tutorial.checkpoint import vit_from_mae
from mae_tutorial.data import load_dataset

# where the book's chapters keep the pre-trained models they share (`mt.lab.book_model`)
BOOK_CACHE = Path(__file__).resolve().parents[1] / "book" / "runs" / "cache"
TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4,
            decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)


def tiny(norm_pix_loss=False) -> mt.MaskedAutoencoderViT:
    torch.manual_seed(0)
    return mt.MaskedAutoencoderViT(**TINY, norm_pix_loss=norm_pix_loss).eval()


def blobs(n_per_class=100, classes=4, dim=16, spread=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g) * 3
    y = torch.arange(classes).repeat_interleave(n_per_class)
    return centres[y] + spread * torch.randn(len(y), dim, generator=g), y


def test_knn_separates_clusters_and_is_at_chance_on_noise():
    x, y = blobs()
    tx = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    assert ev.knn_accuracy(x, y, tx, y) == 100.0
    noise_labels = torch.randint(0, 4, (400,), generator=torch.Generator().manual_seed(2))
    assert 10 < ev.knn_accuracy(x, noise_labels, tx, y) < 45


def test_knn_votes_are_weighted_by_similarity():
    train = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.6, 0.8]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.05]])
    # two fairly similar neighbours of class 1 lose to one very similar neighbour of class 0
    assert ev.knn_accuracy(train, labels, query, torch.tensor([0]), k=3, temperature=0.07) == 100
    assert ev.knn_accuracy(train, labels, query, torch.tensor([1]), k=3, temperature=100) == 100


def test_linear_probe_learns_a_linear_rule():
    x, y = blobs(spread=1.0)
    accuracy = ev.linear_probe(x[::2], y[::2], x[1::2], y[1::2], epochs=30)
    assert accuracy > 95
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    assert ev.linear_probe(x[::2], shuffled[::2], x[1::2], shuffled[1::2], epochs=30) < 50


def test_features_of_the_frozen_encoder(monkeypatch):
    monkeypatch.setattr(mt.optim, "autocast_dtype", lambda device, amp: None)  # exact, in fp32
    model = tiny()
    data = load_dataset("synthetic", synthetic_size=64)
    cls = ev.extract_features(model, data, "cls", batch_size=20)
    mean = ev.extract_features(model, data, "mean")
    assert cls.shape == mean.shape == (64, 32)
    imgs = mt.data.normalize(data.images[:3].float() / 255, data.mean, data.std)
    with torch.no_grad():
        tokens = model.forward_encoder(imgs)[0]
    assert torch.allclose(cls[:3], tokens[:, 0], atol=1e-5)
    assert torch.allclose(mean[:3], tokens[:, 1:].mean(1), atol=1e-5)
    with pytest.raises(ValueError, match="pool must be"):
        ev.extract_features(model, data, "max")


@pytest.mark.parametrize("norm_pix_loss", [False, True])
def test_reconstruction_of_a_perfect_decoder_is_the_image(norm_pix_loss, monkeypatch):
    model = tiny(norm_pix_loss)
    imgs = torch.randn(2, 3, 32, 32)
    # a decoder that predicts exactly its target: the panels must give the image back
    monkeypatch.setattr(model, "forward_decoder", lambda latent, ids: model.patch_targets(imgs))
    panels = ev.reconstruct(model, imgs, 0.75)
    assert torch.allclose(panels["reconstruction"], imgs, atol=1e-3)
    assert torch.allclose(panels["pasted"], imgs, atol=1e-3)
    removed = panels["mask"].bool()
    masked = mt.patchify(panels["masked"], 8)
    assert (masked[removed] == 0).all()
    assert torch.equal(masked[~removed], mt.patchify(imgs, 8)[~removed])


def test_pasted_panel_keeps_visible_patches():
    model = tiny(norm_pix_loss=True)
    imgs = torch.randn(2, 3, 32, 32)
    panels = ev.reconstruct(model, imgs, 0.75)
    visible = ~panels["mask"].bool()
    pasted, recon = mt.patchify(panels["pasted"], 8), mt.patchify(panels["reconstruction"], 8)
    assert torch.equal(pasted[visible], mt.patchify(imgs, 8)[visible])
    assert torch.equal(pasted[~visible], recon[~visible])


def test_encoder_only_models_refuse_to_reconstruct():
    model = tiny()
    model.encoder_only = True
    with pytest.raises(ValueError, match="encoder-only checkpoint"):
        ev.reconstruct(model, torch.randn(1, 3, 32, 32))


def test_cls_attention_maps_are_the_last_blocks_attention():
    model = tiny()
    imgs = torch.randn(2, 3, 32, 32)
    maps = mt.vit.cls_attention_maps(model, imgs)
    assert maps.shape == (2, 4, 4, 4) and not maps.requires_grad  # ready to draw
    seen = {}
    last = model.blocks[-1]
    last.register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))
    with torch.no_grad():
        model.forward_encoder(imgs)
        full = last.attn.attention_weights(last.norm1(seen["x"]))
    assert torch.allclose(maps.flatten(2), full[:, :, 0, 1:], atol=1e-6)
    assert torch.allclose(maps.sum((-2, -1)) + full[:, :, 0, 0], torch.ones(2, 4), atol=1e-5)


def test_layer_decay_groups():
    vit = vit_from_mae(tiny(), num_classes=5)
    groups = mt.optim.layer_decay_groups(vit, 0.05, 0.5)
    scale = {}
    names = {id(p): n for n, p in vit.named_parameters()}
    for g in groups:
        for p in g["params"]:
            scale[names[id(p)]] = (g["lr_scale"], g["weight_decay"])
    assert scale["patch_embed.proj.weight"] == (0.5**3, 0.05)
    assert scale["blocks.0.attn.qkv.weight"] == (0.5**2, 0.05)
    assert scale["blocks.1.norm1.weight"] == (0.5, 0.0)
    assert scale["head.weight"] == (1.0, 0.05) and scale["fc_norm.bias"] == (1.0, 0.0)
    assert sum(len(g["params"]) for g in groups) == len(list(vit.parameters()))


def test_finetune_runs_both_ways():
    data = load_dataset("synthetic", synthetic_size=256)
    test = load_dataset("synthetic", train=False)
    test.images, test.labels = test.images[:100], test.labels[:100]
    for pretrained in (True, False):
        result = ft.finetune(data, test, tiny(), pretrained, epochs=1, batch_size=64)
        assert result["steps"] == 4 and 0 <= result["accuracy"] <= 100


def test_quick_budget_pretraining_beats_random_features():
    """The book's shared model (the `quick` preset, 936 steps, a minute or two on a CPU) must
    already give features better than the same encoder with random weights, on k-NN and
    linear probe. Mean-pooled patch tokens: after so short a pre-training the cls token has
    learned little. Measured (5,000 / 2,000 images, `benchmarks/quick_budget.py`): k-NN about
    +11 points, linear probe about +15; guarded at +3 and +2. The model is trained here if the
    book has not trained it yet, and loaded from the book's cache otherwise."""
    mae, _ = mt.lab.pretrain_once("quick", cache=BOOK_CACHE)  # = book_model()
    train_set, test_set = mt.data.evaluation_split(3000, 1000)
    rows = ev.against_random_init(mae, train_set, test_set, "mean", probe_epochs=30)
    assert rows["gain"]["knn"] > 3 and rows["gain"]["linear_probe"] > 2, rows


def test_the_gain_over_random_weights_is_measured_against_a_seeded_init():
    data = load_dataset("synthetic", synthetic_size=200)
    test = load_dataset("synthetic", train=False).first(100)
    model = tiny()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    rows = ev.against_random_init(model, data, test, probe_epochs=5, seed=7)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random state untouched
    torch.manual_seed(7)
    by_hand = ev.frozen_feature_report(mt.build_mae(model.config), data, test,
                                       "mean", probe_epochs=5)
    assert rows["random init"] == by_hand
    assert rows["pre-trained"] == ev.frozen_feature_report(model, data, test, "mean", 5)
    assert rows["gain"] == {k: rows["pre-trained"][k] - by_hand[k] for k in by_hand}
    assert rows["gain"]["knn"] != 0  # two different encoders


def test_the_evaluation_split_is_held_out_from_pretraining():
    train, test = mt.data.evaluation_split(300, 50)
    assert (len(train), len(test)) == (300, 50)
    pretraining = load_dataset("synthetic", synthetic_size=300)  # seed 0, as the presets
    assert not torch.equal(train.images, pretraining.images)
    assert torch.equal(test.images, load_dataset("synthetic", train=False).images[:50])


def test_evaluation_runs_under_the_devices_mixed_precision(monkeypatch):
    seen = []
    model = tiny()
    real = model.forward_encoder

    def forward_encoder(imgs, *args):
        seen.append(torch.is_autocast_enabled("cpu"))
        return real(imgs, *args)

    model.forward_encoder = forward_encoder
    # as on a GPU with bf16: the features are computed under autocast
    monkeypatch.setattr(mt.optim, "autocast_dtype", lambda device, amp: torch.bfloat16)
    data = mt.data.load_dataset("synthetic", synthetic_size=16)
    feats = mt.evaluate.extract_features(model, data, batch_size=8)
    assert seen == [True, True] and feats.dtype == torch.float32


def test_partial_finetuning_trains_only_the_last_blocks_and_the_head():
    vit = vit_from_mae(tiny(), num_classes=4, global_pool=True)
    frozen = ft.freeze_all_but_last(vit, 1)
    assert frozen == [vit.blocks[0]]
    trainable = {n for n, p in vit.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("blocks.1.", "fc_norm.", "head.")) for n in trainable)
    assert {n.split(".")[0] for n in trainable} == {"blocks", "fc_norm", "head"}
    before = {n: p.detach().clone() for n, p in vit.named_parameters()}
    opt = mt.optim.adamw(mt.optim.layer_decay_groups(vit, 0.05, 0.75), (0.9, 0.999),
                         torch.device("cpu"))
    for group in opt.param_groups:
        group["lr"] = 1e-2
    vit(torch.randn(8, 3, 32, 32)).square().mean().backward()
    opt.step()  # AdamW skips the parameters without gradients: the frozen ones
    for name, p in vit.named_parameters():
        assert torch.equal(p, before[name]) != (name in trainable), name
    with pytest.raises(ValueError, match="this ViT has 2 blocks"):
        ft.freeze_all_but_last(vit, 3)


def test_finetune_tunes_only_the_head_when_asked():
    data = load_dataset("synthetic", synthetic_size=256)
    test = load_dataset("synthetic", train=False)
    test.images, test.labels = test.images[:100], test.labels[:100]
    result = ft.finetune(data, test, tiny(), epochs=1, batch_size=64, tune_blocks=0)
    assert result["steps"] == 4 and 0 <= result["accuracy"] <= 100


def test_finetune_curve_measures_each_epoch_and_changes_nothing():
    data = load_dataset("synthetic", synthetic_size=256)
    test = load_dataset("synthetic", train=False)
    test.images, test.labels = test.images[:100], test.labels[:100]
    for blocks in (None, 1):  # all blocks trained, and the last one only (others frozen)
        plain = ft.finetune(data, test, tiny(), epochs=3, batch_size=64, tune_blocks=blocks)
        traced = ft.finetune(data, test, tiny(), epochs=3, batch_size=64, tune_blocks=blocks,
                             curve=True)
        assert len(traced["curve"]) == 3 and traced["curve"][-1] == traced["accuracy"]
        assert traced["accuracy"] == plain["accuracy"] and "curve" not in plain


def test_baseline_features_have_the_promised_shapes_and_seeds():
    data = load_dataset("synthetic", synthetic_size=40)
    model = tiny()
    pixels = ev.baseline_features("raw pixels", data)
    assert pixels.shape == (40, 3 * 32 * 32) and 0 <= pixels.min() and pixels.max() <= 1
    cnn = ev.baseline_features("random CNN", data, seed=1)
    assert cnn.shape == (40, 2048) and (cnn >= 0).all()  # after a ReLU and a max-pool
    assert torch.equal(cnn, ev.baseline_features("random CNN", data, seed=1))
    assert not torch.equal(cnn, ev.baseline_features("random CNN", data, seed=2))
    vit = ev.baseline_features("random-init ViT", data, model, seed=7)
    assert torch.equal(vit, ev.extract_features(ev.random_init(model, 7), data, "mean"))
    with pytest.raises(ValueError, match="needs the model"):
        ev.baseline_features("random-init ViT", data)
    with pytest.raises(ValueError, match="unknown baseline"):
        ev.baseline_features("random pixels", data)


def test_frozen_feature_table_puts_the_baselines_beside_the_model():
    data = load_dataset("synthetic", synthetic_size=200)
    test = load_dataset("synthetic", train=False).first(100)
    model = tiny()
    rows = ev.frozen_feature_table(model, data, test, probe_epochs=5, seed=7)
    assert list(rows) == ["MAE", *ev.BASELINES]
    assert rows["MAE"] == ev.frozen_feature_report(model, data, test, "mean", 5)
    by_hand = ev.against_random_init(model, data, test, "mean", 5, seed=7)["random init"]
    assert rows["random-init ViT"] == by_hand  # the same seeded architecture
    assert all(0 <= r[k] <= 100 for r in rows.values() for k in ("knn", "linear_probe"))


def test_the_baseline_table_is_each_baselines_features_judged_alike():
    data = load_dataset("synthetic", synthetic_size=200)
    test = load_dataset("synthetic", train=False).first(100)
    model = tiny()
    rows = ev.baseline_table(model, data, test, probe_epochs=5, seed=7)
    assert list(rows) == list(ev.BASELINES)
    for kind in ev.BASELINES:  # the numbers frozen_feature_table gave before it was split
        train_x, test_x = (ev.baseline_features(kind, d, model, "mean", 7) for d in (data, test))
        args = (train_x, data.labels, test_x, test.labels)
        assert rows[kind] == {"knn": ev.knn_accuracy(*args),
                              "linear_probe": ev.linear_probe(*args, epochs=5)}, kind
    table = ev.frozen_feature_table(model, data, test, probe_epochs=5, seed=7)
    assert {kind: table[kind] for kind in ev.BASELINES} == rows
    other = ev.baseline_table(model, data, test, probe_epochs=5, seed=8)
    assert other["raw pixels"] == rows["raw pixels"]  # no weights, nothing seeded
    assert other["random CNN"] != rows["random CNN"]


def test_seed_verdict_says_above_or_below_only_where_the_seeds_do_not_overlap():
    base = [40.0, 42.0, 45.0]
    assert ev.seed_verdict([46.0, 47.5, 50.0], base) == "above"
    assert ev.seed_verdict([30.0, 35.0, 39.9], base) == "below"
    # a gap in the means is not enough: one seed inside the other's range is noise
    assert ev.seed_verdict([41.0, 49.0, 50.0], base) == "within noise"
    assert ev.seed_verdict([45.0, 48.0], base) == "within noise"  # touching counts as overlap
    assert ev.seed_verdict(base, base) == "within noise"
    with pytest.raises(ValueError, match="one accuracy per seed"):
        ev.seed_verdict([], base)


def test_attention_distance_on_hand_made_weights():
    eye = torch.eye(4).expand(1, 1, 4, 4)  # a 2x2 grid, every patch attending to itself
    assert ev.attention_distance(eye, 2).tolist() == [0.0]
    right = torch.tensor([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0.]])
    assert ev.attention_distance(right.expand(1, 1, 4, 4), 2).item() == pytest.approx(1.0)
    uniform = torch.full((3, 2, 4, 4), 0.25)  # to every patch alike: (0 + 1 + 1 + 2**0.5) / 4
    assert ev.attention_distance(uniform, 2).tolist() == pytest.approx([(2 + 2**0.5) / 4] * 2)


def test_mean_attention_distance_per_block_and_head():
    model = tiny()
    imgs = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    found = ev.mean_attention_distance(model, imgs)
    assert found.shape == (TINY["depth"], TINY["num_heads"])
    grid = TINY["img_size"] // TINY["patch_size"]
    assert ((found > 0) & (found < (2 * (grid - 1) ** 2) ** 0.5)).all()


def test_block_features_are_each_blocks_tokens_before_the_final_norm():
    data = load_dataset("synthetic", train=False)
    data = type(data)(data.name, data.images[:40], data.labels[:40], data.classes, data.mean,
                      data.std)
    model = tiny()
    per_block = ev.block_features(model, data, pool="cls", batch_size=16)
    assert len(per_block) == TINY["depth"]
    assert all(f.shape == (40, TINY["embed_dim"]) for f in per_block)
    assert not torch.allclose(per_block[0], per_block[1])
    last = ev.extract_features(model, data, pool="cls")  # after the final norm
    assert torch.allclose(model.norm(per_block[-1]), last, atol=1e-4)
    means = ev.block_features(model, data, pool="mean", batch_size=16)
    assert not torch.allclose(means[-1], per_block[-1])
    with pytest.raises(ValueError, match="pool must be"):
        ev.block_features(model, data, pool="max")
