"""The mixed-precision rule for GPUs, checked on the CPU with the compute capability faked."""

import pytest
import torch

from mae_tutorial import optim

CUDA = torch.device("cuda")  # constructing a device needs no GPU


def fake_capability(monkeypatch, capability: tuple[int, int]) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)


@pytest.mark.parametrize(("capability", "native"), [
    ((6, 1), False), ((7, 0), False), ((7, 5), False),  # Pascal, V100, T4: bf16 emulated
    ((8, 0), True), ((8, 6), True), ((8, 9), True), ((9, 0), True)])  # Ampere, Ada, Hopper
def test_native_bf16_from_compute_capability_8_0_on(monkeypatch, capability, native):
    fake_capability(monkeypatch, capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # says yes on a T4
    assert optim.gpu_has_native_bf16(CUDA) is native


def test_no_gpu_bf16_on_other_devices(monkeypatch):
    def fail(device=None):
        raise AssertionError("a CUDA query for a device that is not a GPU")

    monkeypatch.setattr(torch.cuda, "get_device_capability", fail)
    for device in ("cpu", "mps", "meta"):
        assert optim.gpu_has_native_bf16(torch.device(device)) is False


@pytest.mark.parametrize(("capability", "dtype"), [
    ((7, 5), torch.float16), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_auto_precision_on_a_gpu_follows_the_capability(monkeypatch, capability, dtype):
    fake_capability(monkeypatch, capability)
    assert optim.autocast_dtype(CUDA, "auto") == dtype
    # forced settings do not look at the hardware
    assert optim.autocast_dtype(CUDA, "bf16") == torch.bfloat16
    assert optim.autocast_dtype(CUDA, "fp16") == torch.float16
    assert optim.autocast_dtype(CUDA, "off") is None


@pytest.mark.parametrize("native", [False, True])
def test_auto_precision_asks_the_one_rule(monkeypatch, native):
    asked = []

    def rule(device: torch.device) -> bool:
        asked.append(device)
        return native

    fake_capability(monkeypatch, (8, 0) if not native else (7, 5))  # the opposite answer
    monkeypatch.setattr(optim, "gpu_has_native_bf16", rule)
    assert optim.autocast_dtype(CUDA, "auto") == (torch.bfloat16 if native else torch.float16)
    assert asked == [CUDA]


def test_the_environment_can_say_whether_the_cpu_has_bf16(monkeypatch):
    """MAE_TUTORIAL_CPU_BF16=0 runs a bf16 machine as an AVX2-only one runs (fp32), for
    measuring what such a machine would take; =1 the other way."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.setenv("MAE_TUTORIAL_CPU_BF16", "0")
    assert not optim.cpu_has_native_bf16()
    assert optim.autocast_dtype(torch.device("cpu"), "auto") is None  # fp32
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setenv("MAE_TUTORIAL_CPU_BF16", "1")
    assert optim.cpu_has_native_bf16()
    monkeypatch.setenv("MAE_TUTORIAL_CPU_BF16", "yes")
    with pytest.raises(ValueError, match="must be 0 or 1"):
        optim.cpu_has_native_bf16()
    monkeypatch.delenv("MAE_TUTORIAL_CPU_BF16")
    assert not optim.cpu_has_native_bf16()  # the (faked) CPU decides again
