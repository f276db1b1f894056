"""Kernel tests run the Triton kernels on CUDA when present, else on the CPU
through Triton's interpreter. The interpreter must be switched on before any
kernel module (hence triton.jit) is imported, so it is set here."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

_TOL = {
    torch.float32: dict(atol=2e-3, rtol=2e-3),
    torch.float16: dict(atol=2e-3, rtol=2e-3),
    torch.bfloat16: dict(atol=1.6e-2, rtol=1.6e-2),
}


@pytest.fixture
def device():
    from ember.kernels import triton_available

    if not triton_available():
        pytest.skip("triton unavailable (no CUDA and TRITON_INTERPRET != 1)")
    return "cpu" if os.environ.get("TRITON_INTERPRET", "0") == "1" else "cuda"


@pytest.fixture(params=[torch.float32, torch.float16, torch.bfloat16], ids=["fp32", "fp16", "bf16"])
def dtype(request, device):
    if request.param == torch.bfloat16 and device == "cpu":
        pytest.skip("the Triton interpreter computes bf16 wrongly; bf16 is tested on CUDA")
    return request.param


@pytest.fixture
def tol():
    """Tolerances for comparing a kernel with its reference, by dtype."""
    return lambda dt: _TOL[dt]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
