"""Did the MAE learn anything useful? Frozen features, fine-tuning, and pictures (chapter 7).

- k-NN on frozen features: cosine similarity, k = 20, votes weighted by exp(similarity / 0.07).
- Linear probing as the paper (Sec. 4, appendix A.1): frozen encoder, cls-token features, a
  BatchNorm without affine parameters before the linear head. Here the features are computed
  once, without augmentation, and the head is trained with SGD (the paper uses LARS with a
  16,384 batch and augmented crops).
- Fine-tuning (module `finetune`): the encoder plus a new head, global average pooling,
  layer-wise learning-rate decay, drop path; compared with the same ViT trained from scratch.
- Reconstruction in the official demo's four panels (the cls token's attention maps, chapter 3's
  picture, are `vit.cls_attention_maps`).

    python -m mae_tutorial.evaluate --checkpoint runs/mae/checkpoint.pth --dataset synthetic
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import mae_from_checkpoint
from .data import DATASETS, ImageSet, load_dataset, model_inputs
from .finetune import finetune
from .mae import MaskedAutoencoderViT, build_mae, normalize_patches
from .optim import autocast_for, lr_at
from .patches import patchify, unpatchify
from .runtime import pick_device

# ---------------------------------------------------------------------------------------------
# Reconstruction


@torch.no_grad()
def reconstruction_score(model: MaskedAutoencoderViT, data: ImageSet, num_images: int = 1000,
                         mask_ratio: float = 0.75, batch_size: int = 250,
                         seed: int = 0) -> dict[str, float]:
    """Masked-patch loss of `model` on the first `num_images` images of `data` (no augmentation)
    and the loss of predicting zeros for the same masks; returns both and their ratio
    (1.0: no better than predicting nothing). Chapter 5."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    total = zero = 0.0
    n = min(num_images, len(data))
    for start in range(0, n, batch_size):
        imgs = model_inputs(data, start, min(n, start + batch_size), model.config.img_size,
                             device)
        noise = torch.rand(len(imgs), model.num_patches, generator=g).to(device)
        loss, pred, mask = model(imgs, mask_ratio, noise)
        total += loss.item() * len(imgs)
        zero += model.forward_loss(imgs, torch.zeros_like(pred), mask).item() * len(imgs)
    model.train(was_training)
    return {"loss": total / n, "zero_loss": zero / n, "ratio": total / zero}


@torch.no_grad()
def reconstruct(model: MaskedAutoencoderViT, imgs: torch.Tensor, mask_ratio: float = 0.75,
                noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The official demo notebook's four panels (original, masked, reconstruction,
    reconstruction + visible; the paper's figures show masked / reconstruction / original
    triplets), in the (normalized) space of `imgs`:
    `masked` (removed patches zeroed), `reconstruction` (the decoder's prediction of every
    patch), `pasted` (the prediction with the visible patches put back), and `mask` (N, L).

    With `norm_pix_loss` the decoder predicts each patch normalized to mean 0, variance 1; to
    show it as pixels, each predicted patch is given back the mean and variance of the true
    patch. That borrows two numbers per patch from the hidden image, so such pictures look
    better than what the model predicts alone (the official demo draws a model trained on plain
    pixels, whose prediction needs no such help). Chapters 5 and 8.
    """
    if model.encoder_only:
        raise ValueError("this model was loaded from an encoder-only checkpoint (the "
                         "mae_pretrain_vit_* files have no decoder), so it cannot reconstruct. "
                         "Use mae_visualize_vit_base / _large (pixel target) or "
                         "mae_pretrain_vit_*_full (normalized target)")
    was_training = model.training
    model.eval()
    _, pred, mask = model(imgs, mask_ratio, noise)
    model.train(was_training)
    p, c = model.patch_size, model.in_chans
    target = patchify(imgs, p)
    if model.norm_pix_loss:  # give each predicted patch the true patch's mean and std
        _, mean, std = normalize_patches(target)
        pred = pred * std + mean
    keep = (1 - mask).unsqueeze(-1)
    grid = (imgs.shape[-2] // p, imgs.shape[-1] // p)
    return {
        "mask": mask,
        "masked": unpatchify(target * keep, p, c, grid),
        "reconstruction": unpatchify(pred, p, c, grid),
        "pasted": unpatchify(target * keep + pred * (1 - keep), p, c, grid),
    }


# ---------------------------------------------------------------------------------------------
# Frozen features


@torch.no_grad()
def extract_features(model: MaskedAutoencoderViT, data: ImageSet, pool: str = "cls",
                     batch_size: int = 256) -> torch.Tensor:
    """Frozen encoder features of every image (no masking, no augmentation): (N, D) on the CPU.
    `pool`: "cls" (the cls token, as the paper's linear probe) or "mean" (patch tokens).
    Chapters 5 and 7."""
    if pool not in ("cls", "mean"):
        raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(data), batch_size):
        imgs = model_inputs(data, start, start + batch_size, model.config.img_size, device)
        with autocast_for(device):
            tokens = model.forward_encoder(imgs)[0]
        out.append((tokens[:, 0] if pool == "cls" else tokens[:, 1:].mean(dim=1)).float().cpu())
    model.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def block_features(model: MaskedAutoencoderViT, data: ImageSet, pool: str = "mean",
                   batch_size: int = 256) -> list[torch.Tensor]:
    """Frozen features after each encoder block, every patch visible: a list of `depth`
    tensors (N, D) on the CPU, pooled as `extract_features` pools ("cls" or "mean"), taken
    before the final norm (the last block's differ from `extract_features` by that norm).
    For a linear probe per layer: the representation chapter."""
    if pool not in ("cls", "mean"):
        raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    per_block: list[list[torch.Tensor]] = [[] for _ in model.blocks]
    seen: list[torch.Tensor] = []
    handles = [block.register_forward_hook(lambda module, args, out: seen.append(out))
               for block in model.blocks]
    try:
        for start in range(0, len(data), batch_size):
            imgs = model_inputs(data, start, start + batch_size, model.config.img_size, device)
            seen.clear()
            with autocast_for(device):
                model.forward_encoder(imgs)
            for i, tokens in enumerate(seen):  # (n, 1 + L, D), in block order
                pooled = tokens[:, 0] if pool == "cls" else tokens[:, 1:].mean(dim=1)
                per_block[i].append(pooled.float().cpu())
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return [torch.cat(chunks) for chunks in per_block]


def attention_distance(weights: torch.Tensor, grid: int) -> torch.Tensor:
    """Mean attention distance per head, in patches: weights (N, heads, L, L) of patch
    queries over patch keys (L = grid * grid, rows summing to 1) -> (heads,), the distance
    from each query's patch to the patches it attends to, weighted by the attention and
    averaged over queries and images (the ViT paper's Fig. 7, there in pixels). The
    representation chapter."""
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    centres = torch.stack([rows.flatten(), cols.flatten()], dim=1).to(weights)  # (L, 2)
    distance = torch.cdist(centres, centres)  # (L, L), in patches
    return (weights * distance).sum(-1).mean(dim=(0, 2))


@torch.no_grad()
def mean_attention_distance(model: MaskedAutoencoderViT, imgs: torch.Tensor) -> torch.Tensor:
    """`attention_distance` of every block and head of the encoder for a batch `imgs`, every
    patch visible: (depth, heads). The cls token is left out as query and as key, and each
    row renormalized over the patches. The representation chapter."""
    inputs: list[torch.Tensor] = []
    handles = [block.attn.register_forward_hook(lambda module, args, out: inputs.append(args[0]))
               for block in model.blocks]
    try:
        model.forward_encoder(imgs)
    finally:
        for handle in handles:
            handle.remove()
    grid = model.patch_embed.grid_size
    found = []
    for block, x in zip(model.blocks, inputs, strict=True):
        w = block.attn.attention_weights(x)[:, :, 1:, 1:].float()  # patches to patches
        found.append(attention_distance(w / w.sum(-1, keepdim=True), grid))
    return torch.stack(found)


@torch.no_grad()
def knn_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                 test_y: torch.Tensor, k: int = 20, temperature: float = 0.07,
                 chunk: int = 1024) -> float:
    """Top-1 accuracy (%) of a weighted k-NN vote on cosine similarity. Chapters 5 and 7."""
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    train_x = F.normalize(train_x, dim=1)
    correct = 0
    for start in range(0, len(test_x), chunk):
        sim = F.normalize(test_x[start:start + chunk], dim=1) @ train_x.T  # (n, N_train)
        top_sim, top_idx = sim.topk(min(k, len(train_x)), dim=1)
        votes = torch.zeros(len(sim), num_classes)
        votes.scatter_add_(1, train_y[top_idx], (top_sim / temperature).exp())
        correct += (votes.argmax(dim=1) == test_y[start:start + chunk]).sum().item()
    return 100.0 * correct / len(test_x)


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                 test_y: torch.Tensor, epochs: int = 50, batch_size: int = 256,
                 base_lr: float = 0.1, seed: int = 0) -> float:
    """Top-1 accuracy (%) of a linear classifier on frozen features, with the paper's
    BatchNorm (no affine) in front; SGD with momentum, warm-up and a cosine schedule. Chapter 7."""
    g = torch.Generator().manual_seed(seed)
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
        head = nn.Sequential(nn.BatchNorm1d(train_x.shape[1], affine=False, eps=1e-6),
                             nn.Linear(train_x.shape[1], num_classes))
    nn.init.trunc_normal_(head[1].weight, std=0.01, generator=g)
    nn.init.zeros_(head[1].bias)
    opt = torch.optim.SGD(head.parameters(), lr=0.0, momentum=0.9, weight_decay=0.0)
    steps_per_epoch = max(1, len(train_x) // batch_size)
    total, peak = epochs * steps_per_epoch, base_lr * batch_size / 256
    step = 0
    head.train()
    for _ in range(epochs):
        order = torch.randperm(len(train_x), generator=g)
        for i in range(steps_per_epoch):
            idx = order[i * batch_size:(i + 1) * batch_size]
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, peak, 0.0, max(1, total // 10))
            loss = F.cross_entropy(head(train_x[idx]), train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    head.eval()
    with torch.no_grad():
        return 100.0 * (head(test_x).argmax(1) == test_y).float().mean().item()


# ---------------------------------------------------------------------------------------------
# Frozen-feature comparison and the command line


def frozen_feature_report(model: MaskedAutoencoderViT, data_train: ImageSet,
                          data_test: ImageSet, pool: str = "cls",
                          probe_epochs: int = 50) -> dict[str, float]:
    """k-NN and linear-probe accuracy (%) of `model`'s frozen features. The representation
    chapter (and chapter 7, through `against_random_init`)."""
    train_x = extract_features(model, data_train, pool)
    test_x = extract_features(model, data_test, pool)
    return {"knn": knn_accuracy(train_x, data_train.labels, test_x, data_test.labels),
            "linear_probe": linear_probe(train_x, data_train.labels, test_x, data_test.labels,
                                         epochs=probe_epochs)}


def random_init(model: MaskedAutoencoderViT, seed: int = 0) -> MaskedAutoencoderViT:
    """The architecture of `model` at the random initialization seed `seed` gives, on its
    device (the global random state is left as it was). The representation chapter (and
    chapter 7, through `against_random_init`)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_mae(model.config).to(next(model.parameters()).device)


def against_random_init(model: MaskedAutoencoderViT, data_train: ImageSet, data_test: ImageSet,
                        pool: str = "mean", probe_epochs: int = 50,
                        seed: int = 0) -> dict[str, dict[str, float]]:
    """What pre-training bought: `frozen_feature_report` of `model` ("pre-trained"), of the
    same architecture at the random initialization seed `seed` gives ("random init", see
    `random_init`), and the difference ("gain", in points). Chapter 7."""
    rows = {name: frozen_feature_report(m, data_train, data_test, pool, probe_epochs)
            for name, m in (("pre-trained", model), ("random init", random_init(model, seed)))}
    rows["gain"] = {k: rows["pre-trained"][k] - rows["random init"][k] for k in rows["pre-trained"]}
    return rows


# ---------------------------------------------------------------------------------------------
# Baselines: what features need no pre-training at all


class RandomCNN(nn.Sequential):
    """Two convolution-ReLU-max-pool stages at their random initialization (3 -> 16 -> 32
    channels, 3x3 kernels): (N, 3, 32, 32) -> (N, 32 * 8 * 8) = (N, 2048) features. Locality
    and pooling are built in, which a ViT has to learn. Chapter 7."""

    def __init__(self, in_chans: int = 3) -> None:
        super().__init__(nn.Conv2d(in_chans, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten())


BASELINES = ("raw pixels", "random-init ViT", "random CNN")


@torch.no_grad()
def baseline_features(kind: str, data: ImageSet, model: MaskedAutoencoderViT | None = None,
                      pool: str = "mean", seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    """Features of every image of `data` that need no training, (N, D) on the CPU: "raw
    pixels" (the image in [0, 1], flattened), "random-init ViT" (the encoder of `model`'s
    architecture at the random weights `seed` gives, `pool`ed) or "random CNN" (`RandomCNN`
    at the weights `seed` gives, on the normalized image). Chapter 7."""
    if kind == "raw pixels":
        return data.images.float().div(255).flatten(1)
    if kind == "random-init ViT":
        if model is None:
            raise ValueError("the random-init ViT baseline needs the model whose "
                             "architecture it copies: pass model=...")
        return extract_features(random_init(model, seed), data, pool)
    if kind == "random CNN":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            cnn = RandomCNN(data.images.shape[1]).eval()
        return torch.cat([cnn(model_inputs(data, i, i + batch_size, data.images.shape[-1],
                                           torch.device("cpu")))
                          for i in range(0, len(data), batch_size)])
    raise ValueError(f"unknown baseline {kind!r}; choose one of {list(BASELINES)}")


def baseline_table(model: MaskedAutoencoderViT, data_train: ImageSet, data_test: ImageSet,
                   pool: str = "mean", probe_epochs: int = 50,
                   seed: int = 0) -> dict[str, dict[str, float]]:
    """k-NN and linear-probe accuracy (%) of the three features of `baseline_features` that
    need no pre-training (raw pixels, the random-init ViT of `model`'s architecture, a random
    CNN), one row each in the order of `BASELINES`, judged like `frozen_feature_report`.
    `model` gives only the architecture; `mt.lab.baselines_once` keeps the table. Chapter 7."""
    rows = {}
    for kind in BASELINES:
        train_x, test_x = (baseline_features(kind, d, model, pool, seed)
                           for d in (data_train, data_test))
        rows[kind] = {"knn": knn_accuracy(train_x, data_train.labels, test_x, data_test.labels),
                      "linear_probe": linear_probe(train_x, data_train.labels, test_x,
                                                   data_test.labels, epochs=probe_epochs)}
    return rows


def frozen_feature_table(model: MaskedAutoencoderViT, data_train: ImageSet, data_test: ImageSet,
                         pool: str = "mean", probe_epochs: int = 50,
                         seed: int = 0) -> dict[str, dict[str, float]]:
    """k-NN and linear-probe accuracy (%) of `model`'s frozen features ("MAE") beside the three
    baselines of `baseline_table` (raw pixels, the random-init ViT, a random CNN), on the
    same images with the same k-NN and probe. Chapter 7."""
    rows = {"MAE": frozen_feature_report(model, data_train, data_test, pool, probe_epochs)}
    return rows | baseline_table(model, data_train, data_test, pool, probe_epochs, seed)


# ---------------------------------------------------------------------------------------------
# Several pre-training seeds: when is one result above another?


def seed_verdict(ours: Sequence[float], theirs: Sequence[float]) -> str:
    """How per-seed results `ours` stand against `theirs` (accuracies, one per pre-training
    seed): "above" where the lowest of ours beats the highest of theirs, "below" where the
    highest of ours is under the lowest of theirs, otherwise "within noise" (the ranges
    overlap). The book says "A beats B" only where this says so. Chapter 5."""
    if not ours or not theirs:
        raise ValueError(f"need at least one result on each side, got {len(ours)} and "
                         f"{len(theirs)}: pass one accuracy per seed")
    if min(ours) > max(theirs):
        return "above"
    return "below" if max(ours) < min(theirs) else "within noise"


def main(argv: list[str] | None = None) -> int:
    """The command line (`python -m mae_tutorial.evaluate --help`), chapter 7; returns the
    exit code."""
    p = argparse.ArgumentParser(
        prog="python -m mae_tutorial.evaluate",
        description="Evaluate a pre-trained MAE against the same architecture with random "
                    "weights: k-NN and linear probe on frozen features, optionally fine-tuning.")
    p.add_argument("--checkpoint", required=True,
                   help="a training checkpoint, an official-format file, or an official name")
    p.add_argument("--dataset", default="synthetic", choices=list(DATASETS))
    p.add_argument("--data-root", default="data")
    p.add_argument("--train-size", type=int, default=10_000,
                   help="images of the training split used (k-NN memory, probe training)")
    p.add_argument("--test-size", type=int, default=2_000)
    p.add_argument("--pool", default="cls", choices=["cls", "mean"])
    p.add_argument("--probe-epochs", type=int, default=50)
    p.add_argument("--finetune-epochs", type=int, default=0,
                   help="also fine-tune (and train from scratch) for this many epochs")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        device = pick_device(args.device)
        mae = mae_from_checkpoint(args.checkpoint).to(device)
        print(f"device: {device}\ndataset: {args.dataset}")
        train_set = load_dataset(args.dataset, args.data_root, train=True,
                                 synthetic_size=args.train_size, seed=args.seed)
        train_set = train_set.first(args.train_size)
        test_set = load_dataset(args.dataset, args.data_root, train=False).first(args.test_size)
        rows = against_random_init(mae, train_set, test_set, args.pool, args.probe_epochs,
                                   args.seed)
        print(f"{'encoder':<14}{'k-NN %':>9}{'linear %':>10}")
        for name, r in rows.items():
            print(f"{name:<14}{r['knn']:>9.1f}{r['linear_probe']:>10.1f}")
        if args.finetune_epochs:
            for name, pretrained in (("fine-tuned", True), ("from scratch", False)):
                r = finetune(train_set, test_set, mae, pretrained, epochs=args.finetune_epochs,
                             device=device, seed=args.seed)
                print(f"{name:<14} top-1 {r['accuracy']:.1f}% after {r['steps']} steps")
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
