"""The GEMV (M <= 8) and tensor-core tiled int4/int8 kernels against the plain-torch reference
of the checkpoint layout: every group size GPTQ and AWQ use (32, 64, 128, the whole row),
act-order (the caller permutes the activations' columns), N not a multiple of the strips,
and M at each tile's edges."""
import pytest
import torch

from ember.kernels.quant_int_gemv import GEMV_MAX_ROWS, int_gemv
from ember.kernels.quant_int_strips import int_gemm_ref, to_strips
from ember.kernels.quant_int_tiled_gemm import int_tiled_gemm
from ember.kernels.quant_packing import pack_int32

N = 96  # not a multiple of the strips: padded words, masked edges

# On the GPU bf16, the dtype models serve in; the interpreter runs fp32 and fp16 (it computes
# bf16 wrongly).
_DTYPES = {"bf16": torch.bfloat16} if torch.cuda.is_available() else {"fp32": torch.float32, "fp16": torch.float16}
# name: (group size, act-order, K). Groups of 40 (no multiple of 16) take the tiled kernel's
# per-feature scale path.
GROUPS = {"g32-act-order": (32, True, 512), "g64": (64, False, 512), "g128": (128, False, 512),
          "per-channel": (-1, False, 512), "g40": (40, False, 320)}


@pytest.fixture(params=list(_DTYPES.values()), ids=list(_DTYPES))
def dtype(request, device):
    return request.param


def _case(device, dtype, bits, group_size, act_order, k, m):
    """(kernel arguments after x, x in the weight's row order, the reference product)."""
    group = k if group_size == -1 else group_size
    qweight = pack_int32(torch.randint(0, 2 ** bits, (k, N)), bits, dim=0)
    scales = (torch.rand(k // group, N) * 0.02 / 2 ** (bits - 4)).to(dtype)
    zeros = torch.randint(0, 2 ** bits, (k // group, N)).to(dtype)
    perm = torch.randperm(k) if act_order else None
    x = torch.randn(m, k).to(dtype)
    ref = int_gemm_ref(x.float(), qweight, scales.float(), zeros.float(), bits, group, perm)
    rows = x[:, perm] if act_order else x
    args = (to_strips(qweight, 128).to(device), scales.to(device), zeros.to(device), bits, group)
    return args, rows.to(device).contiguous(), ref


def _close(out, ref, dtype):
    assert out.dtype == dtype
    torch.testing.assert_close(out.float().cpu(), ref, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("m", [1, 3, GEMV_MAX_ROWS])
@pytest.mark.parametrize("group", list(GROUPS))
@pytest.mark.parametrize("bits", [4, 8])
def test_int_gemv(device, dtype, bits, group, m):
    args, x, ref = _case(device, dtype, bits, *GROUPS[group], m)
    _close(int_gemv(x, *args), ref, dtype)


@pytest.mark.parametrize("m", [1, 17, 100])  # the 16-, 32- and 128-row tiles, the last partial
@pytest.mark.parametrize("group", list(GROUPS))
@pytest.mark.parametrize("bits", [4, 8])
def test_int_tiled_gemm(device, dtype, bits, group, m):
    args, x, ref = _case(device, dtype, bits, *GROUPS[group], m)
    _close(int_tiled_gemm(x, *args), ref, dtype)


def test_gemv_takes_decode_batches_only(device):
    args, x, _ = _case(device, torch.float32, 4, 128, False, 512, GEMV_MAX_ROWS + 1)
    with pytest.raises(AssertionError, match="at most 8 rows"):
        int_gemv(x, *args)


@pytest.mark.parametrize("kernel", [int_gemv, int_tiled_gemm])
def test_empty_batch(device, kernel):
    args, x, _ = _case(device, torch.float32, 4, 128, False, 512, 0)
    assert kernel(x, *args).shape == (0, N)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("k, n", [(3584, 4608), (18944, 3584)], ids=["7b-qkv", "7b-down"])
@pytest.mark.parametrize("bits, group_size", [(4, 128), (4, 32), (8, 128)])
def test_kernels_at_7b_shapes_on_gpu(k, n, bits, group_size):
    """At a 7B layer's shapes the GPU splits K over its many multiprocessors in ways the
    interpreter's four never do: every kernel at each M of its range against the dequantized
    product in fp32."""
    qweight = pack_int32(torch.randint(0, 2 ** bits, (k, n)), bits, dim=0).cuda()
    scales = (torch.rand(k // group_size, n, device="cuda") * 0.02 / 2 ** (bits - 4)).bfloat16()
    zeros = torch.randint(0, 2 ** bits, (k // group_size, n), device="cuda").bfloat16()
    args = (to_strips(qweight, 128), scales, zeros, bits, group_size)
    for kernel, rows in ((int_gemv, (1, 2, GEMV_MAX_ROWS)), (int_tiled_gemm, (3, 16, 64, 256))):
        for m in rows:
            x = torch.randn(m, k, device="cuda").bfloat16()
            ref = int_gemm_ref(x.float(), qweight, scales.float(), zeros.float(), bits, group_size)
            error = (kernel(x, *args).float() - ref).norm() / ref.norm()
            assert error < 1e-2, f"{kernel.__name__}, M = {m}: relative error {error:.2e}"
