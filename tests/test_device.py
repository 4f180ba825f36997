"""lib.device: the one device/dtype helper."""

import pytest
import torch

from lib.device import autocast, autocast_dtype, describe, needs_grad_scaler, pick_device


def test_auto_picks_an_available_device():
    d = pick_device("auto")
    assert d.type in ("cpu", "cuda", "mps")
    if torch.cuda.is_available():
        assert d.type == "cuda"
    assert pick_device(None) == d


def test_cpu_is_always_there_and_runs_in_fp32():
    d = pick_device("cpu")
    assert d == torch.device("cpu") and autocast_dtype(d) is None
    with autocast(d, None):  # what the trainer uses on a CPU: plain float32
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32
    with autocast(d, torch.bfloat16):  # and the dtype, when one is given, is really applied
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.bfloat16
    assert "cpu" in describe(d)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_a_missing_gpu_is_an_error():
    with pytest.raises(ValueError, match="no CUDA GPU"):
        pick_device("cuda")


def test_unknown_device_is_named():
    with pytest.raises(ValueError, match="'gpu0'"):
        pick_device("gpu0")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_uses_its_native_autocast_dtype():
    d = pick_device("cuda")
    native = torch.bfloat16 if torch.cuda.get_device_capability(d)[0] >= 8 else torch.float16
    assert autocast_dtype(d) == native
    with autocast(d, native):
        assert torch.ones(2, 2, device=d).matmul(torch.ones(2, 2, device=d)).dtype == native


@pytest.mark.parametrize("capability, dtype", [
    ((7, 5), torch.float16),  # Colab's T4: float16 tensor cores, bfloat16 only emulated
    ((7, 0), torch.float16),  # V100
    ((8, 0), torch.bfloat16),  # A100
    ((9, 0), torch.bfloat16),  # H100
])
def test_cuda_precision_follows_the_gpus_tensor_cores(monkeypatch, capability, dtype):
    """The choice rests on the compute capability, not on torch.cuda.is_bf16_supported(),
    which says yes on a T4 (emulation)."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert autocast_dtype(torch.device("cuda")) == dtype
    assert needs_grad_scaler(dtype) == (dtype == torch.float16)


def test_cpu_and_mps_train_in_float32():
    assert autocast_dtype(torch.device("cpu")) is None and autocast_dtype(torch.device("mps")) is None
    assert not needs_grad_scaler(None) and not needs_grad_scaler(torch.bfloat16)
