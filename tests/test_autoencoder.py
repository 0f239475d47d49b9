import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mae_tutorial.autoencoder import ConvAutoencoder, conv_out_size, hidden_mse
from mae_tutorial.data import DATASET_STATS, make_synthetic, normalize


def test_shapes_for_32x32_images():
    model = ConvAutoencoder(img_size=32, in_chans=3, width=16, bottleneck=128)
    imgs = torch.randn(5, 3, 32, 32)
    code = model.encode(imgs)
    assert code.shape == (5, 128)
    assert model.decode(code).shape == (5, 3, 32, 32)
    assert model.feature_shape == (32, 8, 8)
    assert torch.equal(model(imgs), model.decode(code))


@pytest.mark.parametrize("img_size", [4, 8, 28, 32, 64])
def test_sizes_are_derived_from_img_size(img_size):
    model = ConvAutoencoder(img_size=img_size, in_chans=1, width=4, bottleneck=10)
    out = model(torch.randn(2, 1, img_size, img_size))
    assert out.shape == (2, 1, img_size, img_size)
    side = img_size // 4
    assert model.feature_shape == (8, side, side)
    assert model.encoder[-1].in_features == 8 * side * side


@pytest.mark.parametrize("bottleneck", [1, 16, 300])
def test_everything_passes_through_a_bottleneck_sized_code(bottleneck):
    model = ConvAutoencoder(width=8, bottleneck=bottleneck)
    assert model.bottleneck == bottleneck
    assert model.encode(torch.randn(3, 3, 32, 32)).shape == (3, bottleneck)
    assert model.decoder[0].in_features == bottleneck  # the decoder sees only the code
    # Two images with the same code get the same reconstruction.
    code = model.encode(torch.randn(1, 3, 32, 32)).expand(2, -1)
    out = model.decode(code)
    assert torch.equal(out[0], out[1])


@pytest.mark.parametrize("size,kernel,stride,padding",
                         [(32, 4, 2, 1), (28, 4, 2, 1), (30, 4, 2, 1), (32, 3, 1, 1),
                          (31, 3, 2, 0), (7, 5, 3, 2)])
def test_conv_out_size_is_what_conv2d_does(size, kernel, stride, padding):
    conv = nn.Conv2d(1, 1, kernel, stride=stride, padding=padding)
    assert conv(torch.zeros(1, 1, size, size)).shape[-1] == conv_out_size(size, kernel, stride,
                                                                          padding)


def test_a_few_steps_lower_the_reconstruction_loss():
    torch.manual_seed(0)
    imgs, _ = make_synthetic(32, seed=1)
    x = normalize(imgs.float() / 255, *DATASET_STATS["synthetic"])
    model = ConvAutoencoder(width=8, bottleneck=32)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    with torch.no_grad():
        before = F.mse_loss(model(x), x).item()
    for _ in range(20):
        loss = F.mse_loss(model(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = F.mse_loss(model(x), x).item()
    assert after < 0.85 * before


def test_sizes_the_architecture_cannot_take_raise_with_the_fix():
    with pytest.raises(ValueError, match=r"multiple of 4.*got 30.*28x28 or 32x32"):
        ConvAutoencoder(img_size=30)
    with pytest.raises(ValueError, match="multiple of 4.*got 2"):
        ConvAutoencoder(img_size=2)
    model = ConvAutoencoder(img_size=32)
    with pytest.raises(ValueError, match=r"built for 32x32 images, got 28x28.*img_size=28"):
        model(torch.randn(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"got 30x30.*resize the images to 32x32"):
        model(torch.randn(2, 3, 30, 30))
    with pytest.raises(ValueError, match="in_chans=1"):
        model(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="unsqueeze"):
        model(torch.randn(3, 32, 32))


def test_hidden_mse_scores_only_the_hidden_values():
    target = torch.zeros(2, 3, 4, 4)
    output = torch.ones(2, 3, 4, 4)
    output[:, :, :2] = 5.0  # large errors where nothing is hidden
    hidden = torch.zeros(2, 1, 4, 4)
    hidden[:, :, 2:] = 1  # one mask for all channels
    assert hidden_mse(output, target, hidden) == 1.0
    per_channel = hidden.expand(2, 3, 4, 4).clone()
    per_channel[:, 0] = 0  # the first channel shown everywhere: the same error, fewer values
    assert hidden_mse(output, target, per_channel) == 1.0
    with pytest.raises(ValueError, match="no hidden value"):
        hidden_mse(output, target, torch.zeros(2, 1, 4, 4))
