"""A small convolutional autoencoder: the classic design that MAE starts from (chapter 1).

Encoder: two stride-2 convolutions halve the image twice, then a linear layer squeezes the
feature map into a `bottleneck`-dimensional code. Decoder: the mirror image, a linear layer
and two stride-2 transposed convolutions that double the size twice. Every layer size is
derived from `img_size`, never hard-coded, so the same class works for 28x28 and 32x32 inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from .patches import check_images

DOWNSAMPLE = 4  # two stride-2 layers: the image side must be a multiple of 2 * 2


def conv_out_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output side of a convolution: floor((size + 2 * padding - kernel) / stride) + 1.
    Chapter 1."""
    return (size + 2 * padding - kernel) // stride + 1


class ConvAutoencoder(nn.Module):
    """Images (N, C, H, W) -> code (N, bottleneck) -> reconstruction (N, C, H, W).

    img_size: side of the square input images, a multiple of 4. in_chans: image channels.
    width: channels of the first convolution (the second has 2 * width). bottleneck: length of
    the code, the only thing the decoder sees.

    Both convolutions use kernel 4, stride 2, padding 1, which maps a side of H to exactly
    H / 2 (and the transposed ones 2H back), so an input of side `img_size` comes out with the
    same side. The output is unbounded: it predicts pixels in the scale of the inputs (the
    book normalizes them with the dataset's mean and std). Chapter 1.
    """

    def __init__(self, img_size: int = 32, in_chans: int = 3, width: int = 16,
                 bottleneck: int = 128) -> None:
        super().__init__()
        if img_size < DOWNSAMPLE or img_size % DOWNSAMPLE:
            below = max(DOWNSAMPLE, img_size - img_size % DOWNSAMPLE)
            raise ValueError(
                f"img_size must be a positive multiple of {DOWNSAMPLE} (two stride-2 layers halve "
                f"it twice and the decoder doubles it back), got {img_size}; resize or crop the "
                f"images to {below}x{below} or {below + DOWNSAMPLE}x{below + DOWNSAMPLE}"
            )
        self.img_size, self.in_chans, self.bottleneck = img_size, in_chans, bottleneck
        side = conv_out_size(conv_out_size(img_size, 4, 2, 1), 4, 2, 1)  # img_size / 4
        self.feature_shape = (2 * width, side, side)  # what the code is made from
        flat = 2 * width * side * side

        self.encoder = nn.Sequential(
            nn.Conv2d(in_chans, width, 4, stride=2, padding=1),  # (N, w, H/2, W/2)
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),  # (N, 2w, H/4, W/4)
            nn.ReLU(),
            nn.Flatten(),  # (N, 2w * H/4 * W/4)
            nn.Linear(flat, bottleneck),  # (N, bottleneck): the code
        )
        self.decoder = nn.Sequential(
            nn.Linear(bottleneck, flat),  # (N, 2w * H/4 * W/4)
            nn.ReLU(),
            nn.Unflatten(1, self.feature_shape),  # (N, 2w, H/4, W/4)
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),  # (N, w, H/2, W/2)
            nn.ReLU(),
            nn.ConvTranspose2d(width, in_chans, 4, stride=2, padding=1),  # (N, C, H, W)
        )

    def _check(self, imgs: torch.Tensor) -> None:
        check_images(imgs, self.in_chans)
        h, w = imgs.shape[-2:]
        if (h, w) != (self.img_size, self.img_size):
            hint = (f"build the model with img_size={h}" if h == w and h % DOWNSAMPLE == 0
                    else f"resize the images to {self.img_size}x{self.img_size}")
            raise ValueError(
                f"the model was built for {self.img_size}x{self.img_size} images, got {h}x{w}: "
                f"its linear layers are sized for a {self.feature_shape[1]}x"
                f"{self.feature_shape[2]} feature map; {hint}"
            )

    def encode(self, imgs: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, bottleneck)."""
        self._check(imgs)
        return self.encoder(imgs)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """(N, bottleneck) -> (N, C, H, W)."""
        return self.decoder(code)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> reconstruction (N, C, H, W)."""
        return self.decode(self.encode(imgs))


def hidden_mse(output: torch.Tensor, target: torch.Tensor, hidden: torch.Tensor) -> float:
    """Mean squared error over the hidden values only. `hidden` is 1 where a value was hidden,
    shaped like `target` (N, C, H, W) or one mask for all channels (N, 1, H, W). Chapter 1."""
    hidden = hidden.expand_as(target)
    if not hidden.any():
        raise ValueError("hidden has no 1 anywhere: there is no hidden value to score")
    return (((output - target) ** 2) * hidden).sum().item() / hidden.sum().item()
