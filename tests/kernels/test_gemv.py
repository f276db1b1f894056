import pytest
import torch

from ember.kernels.gemv import GemvKnobs, gemv, gemv_ref


@pytest.mark.parametrize("m", [1, 2, 3, 4])
@pytest.mark.parametrize("n,k", [(24, 64), (10, 300)], ids=["even", "ragged"])
@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
def test_gemv_matches_linear(device, dtype, tol, m, n, k, bias):
    x = torch.randn(m, k, device=device).to(dtype)
    w = (torch.randn(n, k, device=device) / k ** 0.5).to(dtype)
    b = torch.randn(n, device=device).to(dtype) if bias else None
    y = gemv(x, w, b)
    assert y.shape == (m, n) and y.dtype == dtype
    torch.testing.assert_close(y.float(), gemv_ref(x.float(), w.float(), None if b is None else b.float()),
                               **tol(dtype))


def test_gemv_reads_a_strided_row_view(device):
    x = torch.randn(2, 3, 64, device=device)[:, 1]  # rows 192 elements apart
    w = torch.randn(8, 64, device=device)
    torch.testing.assert_close(gemv(x, w), gemv_ref(x, w), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("m", [1, 3])
@pytest.mark.parametrize("block_n,elements,num_warps", [(4, 256, 4), (8, 1024, 8), (2, 64, 2)])
def test_every_launch_config_walks_whole_tiles_then_the_tail(device, m, block_n, elements, num_warps):
    """K = 300 over tiles of 64 or 16 keys (the sweep's small configs): whole tiles, then a
    ragged last one; N = 21 leaves the last program's rows partly outside W."""
    x = torch.randn(m, 300, device=device)
    w = torch.randn(21, 300, device=device) / 300 ** 0.5
    y = gemv(x, w, knobs=GemvKnobs(block_n, elements, num_warps))
    torch.testing.assert_close(y, gemv_ref(x, w), atol=1e-4, rtol=1e-4)
