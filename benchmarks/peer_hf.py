"""Our MaskedAutoencoderViT against Hugging Face's ViTMAEForPreTraining, in one process.

Prints, for the same weights and noise: the largest absolute differences (mask, encoder output,
predictions, loss), then the speed of a training step (forward, backward and the same fused
AdamW step) of each, in images per second and as a ratio: the two interleaved over `--rounds`,
median; in fp32, and under bf16 autocast where the CPU has native bf16 (or on a GPU).

    python benchmarks/peer_hf.py [--preset vit_tiny_patch4] [--batch-size 64] [--steps 5]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics

import torch
from transformers import ViTMAEConfig, ViTMAEForPreTraining

import mae_tutorial as mt
from mae_tutorial.hf import vitmae_config_kwargs
from mae_tutorial.optim import adamw, cpu_has_native_bf16
from mae_tutorial.runtime import time_calls


def images_per_second(step, batch_size: int, steps: int) -> float:
    """Images per second over `steps` steps in a row (no warm-up call: the caller warms up)."""
    return batch_size / time_calls(step, torch.device("cpu"), 1, warmup=0, calls=steps)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="vit_tiny_patch4", choices=sorted(mt.MODEL_PRESETS))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    torch.manual_seed(0)
    ours = mt.mae_from_preset(args.preset, norm_pix_loss=True)
    config = ViTMAEConfig(**vitmae_config_kwargs(ours), mask_ratio=0.75)
    theirs = ViTMAEForPreTraining._from_config(config, attn_implementation="sdpa")
    theirs.load_state_dict(mt.to_hf_vitmae(ours.state_dict()), strict=True)
    size = ours.config.img_size
    imgs = torch.randn(args.batch_size, 3, size, size)
    noise = torch.rand(args.batch_size, ours.num_patches)

    ours.eval(), theirs.eval()
    with torch.no_grad():
        loss, pred, mask = ours(imgs, 0.75, noise)
        latent = ours.forward_encoder(imgs, 0.75, noise)[0]
        out = theirs(pixel_values=imgs, noise=noise)
        hidden = theirs.vit(pixel_values=imgs, noise=noise).last_hidden_state
    print(f"preset {args.preset}, batch {args.batch_size}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")
    print(f"max |mask diff|    {(mask - out.mask).abs().max().item():.2e}")
    print(f"max |latent diff|  {(latent - hidden).abs().max().item():.2e}")
    print(f"max |pred diff|    {(pred - out.logits).abs().max().item():.2e}")
    print(f"|loss diff|        {abs(loss.item() - out.loss.item()):.2e}  (loss {loss.item():.4f})")

    ours.train(), theirs.train()
    device = torch.device("cpu")
    optimizers = {name: adamw([{"params": list(m.parameters()), "weight_decay": 0.05}],
                              (0.9, 0.95), device) for name, m in (("ours", ours),
                                                                    ("theirs", theirs))}

    def step(name: str, dtype: torch.dtype | None) -> None:
        amp = (torch.autocast("cpu", dtype=dtype) if dtype else contextlib.nullcontext())
        with amp:
            loss = (ours(imgs, 0.75, noise)[0] if name == "ours"
                    else theirs(pixel_values=imgs, noise=noise).loss)
        loss.backward()
        optimizers[name].step()
        optimizers[name].zero_grad(set_to_none=True)

    modes = [("fp32", None)] + ([("bf16 autocast", torch.bfloat16)]
                                if cpu_has_native_bf16() else [])
    for label, dtype in modes:
        speed: dict[str, list[float]] = {"ours": [], "theirs": []}
        for name in speed:  # warm-up
            step(name, dtype)
        for _ in range(args.rounds):  # interleaved: both see the same machine
            for name in speed:
                speed[name].append(images_per_second(lambda n=name, d=dtype: step(n, d),
                                                     args.batch_size, args.steps))
        ips = {name: statistics.median(v) for name, v in speed.items()}
        print(f"{label}: train step, ours {ips['ours']:.0f} images/s, transformers "
              f"{ips['theirs']:.0f} images/s, ratio ours / transformers "
              f"{ips['ours'] / ips['theirs']:.2f} (median of {args.rounds} rounds)")

if __name__ == "__main__":
    main()
