"""lib.device: the one device/dtype helper."""

import pytest
import torch

from lib.device import autocast, autocast_dtype, describe, pick_device


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
def test_cuda_uses_bf16_autocast():
    d = pick_device("cuda")
    assert autocast_dtype(d) == torch.bfloat16
    with autocast(d, torch.bfloat16):
        assert torch.ones(2, 2, device=d).matmul(torch.ones(2, 2, device=d)).dtype == torch.bfloat16
