"""Fine-tuning a classifier from an MAE's encoder (chapter 7): global average pooling, layer-wise
learning-rate decay, drop path, on-device augmentation, label smoothing; or the same ViT from
random weights (the from-scratch baseline); or only its last blocks (partial fine-tuning, the
after-MAE page).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .augment import DeviceAugment
from .checkpoint import vit_from_mae
from .data import ImageSet, model_inputs
from .mae import MaskedAutoencoderViT
from .optim import adamw, autocast_dtype, autocast_for, layer_decay_groups, lr_at
from .runtime import pick_device, tf32
from .vit import VisionTransformer, use_fused_attention

# Chapter 7's short fine-tuning, which also judges every ablation: three epochs, so a base lr
# ten times the paper's 1e-3 (with 1e-3, three epochs leave the network far from trained).
SHORT_FINETUNE = {"epochs": 3, "base_lr": 1e-2}


def freeze_all_but_last(model: VisionTransformer, blocks: int) -> list[nn.Module]:
    """Partial fine-tuning (the paper's Sec. 4.3, Fig. 9): freeze the patch embedding, the cls
    token and all but the last `blocks` Transformer blocks of `model`; those blocks, the
    pooling norm and the head stay trainable. `blocks=0` leaves only the norm and the head.
    Returns the frozen blocks. The after-MAE page (and chapter 7's exercise 2)."""
    depth = len(model.blocks)
    if not 0 <= blocks <= depth:
        raise ValueError(f"tune_blocks={blocks}: this ViT has {depth} blocks; tune 0 to "
                         f"{depth} of them, or None for all")
    frozen = list(model.blocks)[:depth - blocks]
    for module in (model.patch_embed, *frozen):
        module.requires_grad_(False)
    model.cls_token.requires_grad_(False)
    return frozen


def finetune(data_train: ImageSet, data_test: ImageSet, mae: MaskedAutoencoderViT,
             pretrained: bool = True, epochs: int = 5, batch_size: int = 128,
             base_lr: float = 1e-3, layer_decay: float = 0.75, weight_decay: float = 0.05,
             drop_path_rate: float = 0.1, label_smoothing: float = 0.1, seed: int = 0,
             tune_blocks: int | None = None, device: str | torch.device = "auto",
             progress: bool = False, curve: bool = False) -> dict:
    """Fine-tune a classifier from `mae`'s encoder (or, with `pretrained=False`, the same ViT
    from random weights: the from-scratch baseline) and return its test accuracy (%).

    Global average pooling, layer-wise lr decay, drop path, random-resized-crop + flip
    augmentation on the device, label smoothing, AdamW with warm-up and cosine decay; with
    `progress`, a progress bar on stderr. `tune_blocks=k` trains only the last k Transformer
    blocks, the pooling norm and the head (`freeze_all_but_last`); None trains all. With
    `curve`, the result also holds the test accuracy after each epoch (`"curve"`, one value
    per epoch; it draws nothing, so the final accuracy is the same). Chapter 7.
    """
    device = pick_device(None if device == "auto" else str(device))
    torch.manual_seed(seed)
    model = _classifier(mae, pretrained, len(data_train.classes), drop_path_rate, device)
    frozen = [] if tune_blocks is None else freeze_all_but_last(model, tune_blocks)
    with tf32(device):  # TF32 on NVIDIA GPUs, for this fine-tuning only
        groups = layer_decay_groups(model, weight_decay, layer_decay)
        opt = adamw(groups, (0.9, 0.999), device)
        scaler = torch.amp.GradScaler(device.type,
                                      enabled=autocast_dtype(device, "auto") == torch.float16)
        augment = DeviceAugment(data_train.mean, data_train.std, model.patch_embed.img_size,
                                scale=(0.08, 1.0))
        images, labels = data_train.images.to(device), data_train.labels.to(device)
        g = torch.Generator().manual_seed(seed)  # batches and augmentation: drawn on the CPU
        steps_per_epoch = len(data_train) // batch_size
        total, peak = epochs * steps_per_epoch, base_lr * batch_size / 256
        warmup = max(1, math.ceil(total * 0.1))
        accuracies = []
        _train_mode(model, frozen)
        for step in tqdm(range(total), desc="fine-tuning", disable=not progress, mininterval=1.0):
            idx = torch.randint(0, len(images), (batch_size,), generator=g).to(device)
            lr = lr_at(step, total, peak, 1e-6, warmup)
            for group in opt.param_groups:
                group["lr"] = lr * group["lr_scale"]
            with autocast_for(device):
                loss = F.cross_entropy(model(augment(images[idx], g)), labels[idx],
                                       label_smoothing=label_smoothing)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if curve and (step + 1) % steps_per_epoch == 0 and step + 1 < total:
                accuracies.append(_test_accuracy(model, data_test, device))
                _train_mode(model, frozen)
        result = {"accuracy": _test_accuracy(model, data_test, device), "steps": total}
        return result | {"curve": [*accuracies, result["accuracy"]]} if curve else result


def _train_mode(model: nn.Module, frozen: list[nn.Module]) -> None:
    """`model` in training mode, except its `frozen` blocks, which compute as at test time
    (no drop path)."""
    model.train()
    for block in frozen:
        block.eval()


def _classifier(mae: MaskedAutoencoderViT, pretrained: bool, num_classes: int,
                drop_path_rate: float, device: torch.device) -> VisionTransformer:
    """The classifier `finetune` trains: `mae`'s encoder (or its architecture at random
    weights), global pooling, the attention kernel suited to the device's mixed precision."""
    fused = use_fused_attention(device, autocast_dtype(device, "auto"))
    if not pretrained:  # only the architecture of `mae` is used; the weights stay random
        model = VisionTransformer(num_classes=num_classes, global_pool=True,
                                  drop_path_rate=drop_path_rate, fused_attention=fused,
                                  **mae.config.encoder_kwargs())
    else:
        model = vit_from_mae(mae, num_classes, global_pool=True, drop_path_rate=drop_path_rate,
                             fused_attention=fused)
    return model.to(device)


@torch.no_grad()
def _test_accuracy(model: VisionTransformer, data_test: ImageSet, device: torch.device) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(data_test), 500):
        imgs = model_inputs(data_test, start, start + 500, model.patch_embed.img_size, device)
        with autocast_for(device):
            logits = model(imgs)
        correct += int((logits.argmax(1).cpu() == data_test.labels[start:start + 500]).sum())
    return 100.0 * correct / len(data_test)
