"""A contrastive baseline in MAE's budget: MoCo v3 (Chen, Xie & He, "An Empirical Study of
Training Self-Supervised Vision Transformers", ICCV 2021), the method the MAE paper compares
its linear probe and partial fine-tuning with (its Fig. 9). The representation chapter.

Each image is seen as two augmented views. A query encoder (the ViT, a projection MLP and a
prediction MLP) embeds each view; a momentum encoder (a moving average of the ViT and the
projection, no prediction MLP) embeds the other view as its key. The loss is InfoNCE: a
view's query must pick its own image's key among the keys of the whole batch (the other
images are the negatives), symmetrized over the two views.

The ViT is a `MaskedAutoencoderViT` run with no masking (its decoder is never used), so the
book's evaluations (k-NN, linear probe, partial and full fine-tuning) take the contrastive
encoder exactly as they take MAE's. Every random draw (data order, crops, flips, colours) is
made on the CPU from (seed, stream, step), as MAE's training does.

Kept from the paper's ViT recipe: temperature 0.2, a 3-layer projection and a 2-layer
prediction MLP (BatchNorm, the projection's last one without affine parameters), momentum 0.99
raised to 1 along a cosine, the loss scaled by 2 * temperature. Changed for the small scale:
MLPs of 512 hidden units and 128 outputs (the paper: 4096 and 256) for a 128-d ViT; crops,
flips, colour jitter and grayscale, but no blur or solarization (32x32 images); the data,
steps, batch, learning-rate schedule and AdamW settings of the book's MAE budget (the paper:
weight decay 0.1, 40 warm-up epochs of 300); and the patch projection is trained, not frozen at
its random weights (the paper's fix for instability in long, large-batch runs).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from .augment import resized_crop_batch, sample_crop_boxes
from .batches import EpochOrder, step_generator
from .config import TrainConfig, model_config
from .data import load_dataset, normalize
from .mae import MaskedAutoencoderViT, build_mae
from .optim import adamw, autocast_dtype, lr_at, param_groups
from .runtime import pick_device

TEMPERATURE = 0.2  # the paper's tau for ViTs
MOMENTUM = 0.99    # the momentum encoder's starting coefficient, raised to 1 by a cosine


def grayscale(imgs: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> the same shape, each pixel its luma (ITU-R 601) thrice.
    The representation chapter."""
    luma = (0.299 * imgs[:, 0] + 0.587 * imgs[:, 1] + 0.114 * imgs[:, 2]).unsqueeze(1)
    return luma.expand_as(imgs)


def color_jitter(imgs: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast and saturation of each image scaled by its factors: imgs
    (N, 3, H, W) in [0, 1], factors (N, 3) (1 leaves an image as it is). Clamped to [0, 1].
    The representation chapter."""
    b, c, s = (factors[:, i].view(-1, 1, 1, 1).to(imgs) for i in range(3))
    x = (imgs * b).clamp(0, 1)
    mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)  # contrast: around the mean grey
    x = ((x - mean) * c + mean).clamp(0, 1)
    grey = grayscale(x)  # saturation: towards or away from the image's own grey
    return ((x - grey) * s + grey).clamp(0, 1)


class ContrastiveViews:
    """Two augmented views of a batch (MoCo v3's augmentation, without blur and solarization):
    a random resized crop (scale 0.08-1), a horizontal flip, colour jitter (strength 0.4, with
    probability 0.8) and grayscale (probability 0.2), then normalization. Every draw is made on
    the CPU from `generator`, then applied on the images' device. The representation chapter."""

    def __init__(self, mean, std, size: int = 32, scale: tuple[float, float] = (0.08, 1.0),
                 jitter: float = 0.4, p_jitter: float = 0.8, p_gray: float = 0.2) -> None:
        self.mean, self.std, self.size, self.scale = mean, std, size, scale
        self.jitter, self.p_jitter, self.p_gray = jitter, p_jitter, p_gray

    def view(self, images_uint8: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One view of each image: (N, 3, H, W) uint8 -> (N, 3, size, size) normalized."""
        n, _, height, width = images_uint8.shape
        device = images_uint8.device
        boxes = sample_crop_boxes(n, height, width, self.scale, generator=generator)
        flip = torch.rand(n, generator=generator) < 0.5
        factors = 1 + self.jitter * (2 * torch.rand(n, 3, generator=generator) - 1)
        factors[torch.rand(n, generator=generator) >= self.p_jitter] = 1.0
        gray = torch.rand(n, generator=generator) < self.p_gray
        imgs = resized_crop_batch(images_uint8.float() / 255, boxes.to(device), self.size,
                                  flip.to(device)).clamp(0, 1)
        imgs = color_jitter(imgs, factors.to(device))
        imgs = torch.where(gray.to(device).view(-1, 1, 1, 1), grayscale(imgs), imgs)
        return normalize(imgs, self.mean, self.std)

    def __call__(self, images_uint8: torch.Tensor, generator: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.view(images_uint8, generator), self.view(images_uint8, generator)


def mlp(in_dim: int, hidden: int, out_dim: int, layers: int, last_norm: bool = True
        ) -> nn.Sequential:
    """MoCo v3's heads: (Linear, BatchNorm, ReLU) x (layers - 1), then a Linear, and a
    BatchNorm without affine parameters after it if `last_norm` (the projection's).
    The representation chapter."""
    parts: list[nn.Module] = []
    dims = [in_dim] + [hidden] * (layers - 1)
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        parts += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
    parts.append(nn.Linear(dims[-1], out_dim, bias=not last_norm))
    if last_norm:
        parts.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*parts)


def info_nce(q: torch.Tensor, k: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """InfoNCE of queries q (N, D) against keys k (N, D): row i's positive is k[i], the other
    N - 1 keys its negatives; cosine similarities divided by `temperature`. Multiplied by
    2 * temperature, as MoCo v3 does (it keeps the gradient's scale across temperatures).
    The representation chapter."""
    q, k = F.normalize(q.float(), dim=1), F.normalize(k.float(), dim=1)
    logits = q @ k.T / temperature  # (N, N): the diagonal holds the positives
    labels = torch.arange(len(q), device=q.device)
    return F.cross_entropy(logits, labels) * 2 * temperature


def momentum_at(step: int, total: int, base: float = MOMENTUM) -> float:
    """The momentum coefficient at `step` of `total`: `base` at the start, 1 at the end, along
    a half cosine (MoCo v3, after BYOL). The representation chapter."""
    return 1 - (1 - base) * (math.cos(math.pi * step / total) + 1) / 2


class MoCoV3(nn.Module):
    """MoCo v3 around a ViT: `forward(view1, view2)` is the symmetrized contrastive loss, and
    `update_momentum(m)` moves the momentum encoder towards the query encoder after a step.
    `encoder` is the ViT the evaluations use. The representation chapter."""

    def __init__(self, encoder: MaskedAutoencoderViT, dim: int = 128, hidden: int = 512,
                 temperature: float = TEMPERATURE) -> None:
        super().__init__()
        width = encoder.config.embed_dim
        self.encoder, self.temperature = encoder, temperature
        self.projector = mlp(width, hidden, dim, layers=3)
        self.predictor = mlp(dim, hidden, dim, layers=2, last_norm=False)
        self.momentum_encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.momentum_projector = copy.deepcopy(self.projector).requires_grad_(False)

    @staticmethod
    def embed(encoder: MaskedAutoencoderViT, imgs: torch.Tensor) -> torch.Tensor:
        """The cls token after the encoder's final norm, every patch visible: (N, D)."""
        return encoder.forward_encoder(imgs)[0][:, 0]

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        q1, q2 = (self.predictor(self.projector(self.embed(self.encoder, v)))
                  for v in (view1, view2))
        with torch.no_grad():
            k1, k2 = (self.momentum_projector(self.embed(self.momentum_encoder, v))
                      for v in (view1, view2))
        return info_nce(q1, k2, self.temperature) + info_nce(q2, k1, self.temperature)

    @torch.no_grad()
    def update_momentum(self, m: float) -> None:
        """moving <- m * moving + (1 - m) * online, for the ViT's and the projection's
        weights; their buffers (BatchNorm's running statistics) are copied."""
        for online, moving in ((self.encoder, self.momentum_encoder),
                               (self.projector, self.momentum_projector)):
            for p, q in zip(online.parameters(), moving.parameters(), strict=True):
                q.mul_(m).add_(p.detach(), alpha=1 - m)
            for b, c in zip(online.buffers(), moving.buffers(), strict=True):
                c.copy_(b)


def pretrain_contrastive(cfg: TrainConfig, temperature: float = TEMPERATURE,
                         log_every: int = 10) -> tuple[MoCoV3, list[dict[str, float]]]:
    """Train MoCo v3 with `cfg`'s data, model preset, seed, steps, batch, learning-rate
    schedule, AdamW settings and precision (the MAE-only fields are ignored); returns the
    model (its `encoder` is the ViT to evaluate) and the logged losses. One process; the
    representation chapter (cached by `lab.contrastive_once`)."""
    device = pick_device(cfg.device)
    data = load_dataset(cfg.dataset, cfg.data_root, train=True, download=True,
                        synthetic_size=cfg.synthetic_size, seed=cfg.data_seed)
    torch.manual_seed(cfg.seed)  # the same initial ViT as MAE's run of this seed
    arch = model_config(cfg)
    model = MoCoV3(build_mae(arch), temperature=temperature).to(device)
    optimizer = adamw(param_groups(model, cfg.weight_decay), (cfg.beta1, cfg.beta2), device)
    amp = autocast_dtype(device, cfg.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    views = ContrastiveViews(data.mean, data.std, arch.img_size)
    images = data.images.to(device)
    order = EpochOrder(len(data), cfg.batch_size, cfg.seed, device)
    total = cfg.max_steps or cfg.epochs * (len(data) // cfg.batch_size)
    warmup = max(1, round(cfg.warmup_fraction * total))
    peak = cfg.base_lr * cfg.batch_size / 256
    log: list[dict[str, float]] = []
    model.train()
    for step in range(total):
        lr = lr_at(step, total, peak, cfg.min_lr, warmup)
        for group in optimizer.param_groups:
            group["lr"] = lr
        view1, view2 = views(images[order.batch(step)],
                             step_generator(cfg.seed, "contrastive-views", step))
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss = model(view1, view2)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.clip_grad is not None:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
        scaler.step(optimizer)
        scaler.update()
        model.update_momentum(momentum_at(step + 1, total))
        if (step + 1) % log_every == 0 or step + 1 == total:
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"the contrastive loss is {value} at step {step + 1}; "
                                         "lower base_lr or set clip_grad")
            log.append({"step": step + 1, "loss": value, "lr": lr})
    return model.eval(), log
