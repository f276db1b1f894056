"""Inputs for the Marlin-layout int4 kernels' tests: random codes, scales and zeros in the layout,
activations in the weight's row order (as the loader sorted them for act-order), and the
plain-torch reference product."""
import torch

from ember.kernels.quant_int_marlin_layout import marlin_gemm_ref, to_marlin

# The GPU's dtypes; the interpreter's bf16 is wrong, so fp32 stands in for it there.
DTYPES = ({"bf16": torch.bfloat16, "fp16": torch.float16} if torch.cuda.is_available()
          else {"fp32": torch.float32, "fp16": torch.float16})


def marlin_case(device, dtype, group_size, act_order, k, m, n):
    """(kernel arguments after x, x in the weight's row order, the reference product in fp32)."""
    group = k if group_size == -1 else group_size
    groups = -(-k // group)
    codes = torch.randint(0, 16, (k, n))
    scales = (torch.rand(groups, n) * 0.02).to(dtype)
    zeros = torch.randint(0, 16, (groups, n)).to(dtype)
    x = torch.randn(m, k).to(dtype)
    rows = x[:, torch.randperm(k)] if act_order else x  # the loader sorted the weight's rows
    ref = marlin_gemm_ref(rows.float(), to_marlin(codes), scales.float(), zeros.float(), group)
    args = (to_marlin(codes).to(device), scales.to(device), zeros.to(device), group)
    return args, rows.to(device).contiguous(), ref


def assert_marlin_close(out, ref, dtype):
    assert out.dtype == dtype and out.shape == ref.shape
    torch.testing.assert_close(out.float().cpu(), ref, atol=3e-2, rtol=2e-2)
