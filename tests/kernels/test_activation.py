import pytest
import torch

from ember.kernels.activation import silu_and_mul, silu_and_mul_ref


@pytest.mark.parametrize("shape", [(5, 2 * 64), (3, 2 * 2500), (2, 3, 2 * 40)])
def test_silu_and_mul(device, dtype, tol, shape):
    x = (torch.randn(shape, device=device) * 4).to(dtype)
    out = silu_and_mul(x)
    assert out.shape == (*shape[:-1], shape[-1] // 2) and out.dtype == dtype
    torch.testing.assert_close(out, silu_and_mul_ref(x), **tol(dtype))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # interpreter numpy
def test_silu_and_mul_extremes(device):
    # exp(-g) overflows to inf for very negative g: silu must be -0, not NaN.
    x = torch.tensor([[-1000.0, 0.0, 1000.0, 2.0, 3.0, 4.0]], device=device)
    torch.testing.assert_close(silu_and_mul(x), silu_and_mul_ref(x))
