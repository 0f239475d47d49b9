"""Our MaskedAutoencoderViT against Hugging Face's ViTMAEForPreTraining, in one process.

Prints, for the same weights and noise: the largest absolute differences (mask, encoder output,
predictions, loss), then the speed of a training step (forward + backward) of each, in
images per second, and their ratio.

    python benchmarks/peer_hf.py [--preset vit_tiny_patch4] [--batch-size 64] [--steps 5]
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import ViTMAEConfig, ViTMAEForPreTraining

import mae_tutorial as mt
from mae_tutorial.hf import vitmae_config_kwargs


def images_per_second(step, batch_size: int, steps: int) -> float:
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch_size * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="vit_tiny_patch4", choices=sorted(mt.MODEL_PRESETS))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()

    torch.manual_seed(0)
    ours = mt.mae_from_preset(args.preset, norm_pix_loss=True)
    config = ViTMAEConfig(**vitmae_config_kwargs(ours), mask_ratio=0.75)
    theirs = ViTMAEForPreTraining._from_config(config, attn_implementation="sdpa")
    theirs.load_state_dict(mt.to_hf_vitmae(ours.state_dict()), strict=True)
    size = ours.config["img_size"]
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

    def step_ours():
        ours(imgs, 0.75, noise)[0].backward()

    def step_theirs():
        theirs(pixel_values=imgs, noise=noise).loss.backward()

    ips_ours = images_per_second(step_ours, args.batch_size, args.steps)
    ips_theirs = images_per_second(step_theirs, args.batch_size, args.steps)
    print(f"train step, ours:         {ips_ours:8.1f} images/s")
    print(f"train step, transformers: {ips_theirs:8.1f} images/s")
    print(f"ratio ours / transformers: {ips_ours / ips_theirs:.2f}")


if __name__ == "__main__":
    main()
