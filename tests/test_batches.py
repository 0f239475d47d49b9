"""Every random draw of pre-training and fine-tuning is made on the CPU and copied to the
device, so every machine runs the same experiment (issue: the same runs on any device)."""

import ast
from pathlib import Path

import pytest
import torch

import mae_tutorial as mt
from mae_tutorial.augment import DeviceAugment
from mae_tutorial.batches import step_batches, step_generator

PACKAGE = Path(mt.__file__).resolve().parent
DRAWS = {"rand", "randn", "randint", "randperm", "rand_like", "randn_like", "randint_like",
         "bernoulli", "multinomial", "normal", "Generator"}


def draws_on_a_device(source: str) -> list[str]:
    """The calls in `source` that would draw random numbers on a device: a torch random
    function or generator given a `device=` argument."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            if name in DRAWS and any(k.arg == "device" for k in node.keywords):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_the_scan_finds_a_draw_on_a_device():
    assert draws_on_a_device("g = torch.Generator(device=d)\nx = torch.rand(3, device=d)") == [
        "line 1: torch.Generator(device=d)", "line 2: torch.rand(3, device=d)"]
    assert draws_on_a_device("x = torch.rand(3, generator=g).to(d)") == []


def test_no_module_draws_random_numbers_on_a_device():
    found = {path.name: hits for path in sorted(PACKAGE.rglob("*.py"))
             if (hits := draws_on_a_device(path.read_text()))}
    assert found == {}


def devices() -> list[str]:
    return ["cpu", "meta"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("masking", ["random", "block"])
def test_a_steps_draws_are_the_same_whatever_the_device(device, masking):
    """The 'meta' device holds no values and has no random generator: a step that tried to
    draw there would fail. On a GPU the values themselves are compared."""
    cfg = mt.config.TrainConfig(model="vit_mini_patch4", batch_size=8, masking=masking)
    data = mt.data.load_dataset("synthetic", synthetic_size=64)
    on_cpu = list(step_batches(cfg, data, torch.device("cpu"), stop=3))
    there = list(step_batches(cfg, data, torch.device(device), stop=3))
    for (imgs, noise), (imgs_d, noise_d) in zip(on_cpu, there, strict=True):
        assert imgs_d.device.type == device and noise_d.device.type == device
        assert imgs_d.shape == imgs.shape and noise_d.shape == noise.shape
        if device != "meta":
            assert torch.equal(noise_d.cpu(), noise)  # the same masks
            torch.testing.assert_close(imgs_d.cpu(), imgs, atol=1e-4, rtol=0)  # same crops


@pytest.mark.parametrize("device", devices())
def test_augmentation_draws_are_the_same_whatever_the_device(device):
    augment = DeviceAugment((0.5,) * 3, (0.25,) * 3)
    boxes, flip = augment.sample(16, 32, 32, torch.Generator().manual_seed(3), device)
    ref_boxes, ref_flip = augment.sample(16, 32, 32, torch.Generator().manual_seed(3))
    assert boxes.device.type == device and boxes.shape == (16, 4) and flip.shape == (16,)
    if device != "meta":
        assert torch.equal(boxes.cpu(), ref_boxes) and torch.equal(flip.cpu(), ref_flip)


def test_a_stream_depends_on_seed_stream_and_step_only():
    def draw(*key):
        return torch.rand(4, generator=step_generator(*key))

    assert torch.equal(draw(0, "mask", 5), draw(0, "mask", 5))
    assert not torch.equal(draw(0, "mask", 5), draw(0, "mask", 6))
    assert not torch.equal(draw(0, "mask", 5), draw(0, "augment", 5))
    assert not torch.equal(draw(0, "mask", 5), draw(1, "mask", 5))


def test_drop_path_drops_the_same_samples_whatever_the_device():
    x = torch.ones(64, 3, 8)
    torch.manual_seed(0)
    on_cpu = mt.vit.drop_path(x, 0.5, training=True)
    torch.manual_seed(0)
    on_meta = mt.vit.drop_path(x.to("meta"), 0.5, training=True)
    assert on_meta.device.type == "meta" and on_meta.shape == on_cpu.shape
    kept = on_cpu[:, 0, 0] > 0
    assert 10 < kept.sum() < 54  # about half dropped, the rest scaled by 2
    assert torch.equal(on_cpu[kept], torch.full_like(on_cpu[kept], 2.0))
