"""The int4 weight layout of the Marlin-style kernel (quant_int_marlin_gemm.py), written once
at load from the codes of a GPTQ or AWQ checkpoint, beside its plain-torch reference.

  qweight int32 [N, K / 8]   each output column's input features packed along K, 8 per word
  scales, zeros [G, N]       as the checkpoint's (zeros as floats), G = ceil(K / group_size)

  W[k, n] = (q[k, n] - zeros[k // group_size, n]) * scales[k // group_size, n]

K runs along each column's words because the kernel multiplies W^T (the weight tile is the
dot's first operand, kept in registers; see the kernel's docstring). Inside a word the codes
are interleaved, nibble i holding input feature MARLIN_ORDER[i] of the word's eight: shifting
the word right by 4i and masking it with 0x000F000F leaves features 2i and 2i + 1 in the low
bits of its two halves, and OR-ing in the exponent 0x4300 (bf16; 0x6400 for fp16) turns each
half into the float 128 + q (1024 + q): two codes dequantized per two logic instructions,
without an integer-to-float conversion (FasterTransformer's and Marlin's trick)."""
from __future__ import annotations

import torch

from ember.kernels.quant_packing import unpack_int32, pack_int32

__all__ = ["MARLIN_ORDER", "to_marlin", "marlin_codes", "dequantize_marlin", "marlin_gemm_ref"]

# Nibble i of a word holds feature MARLIN_ORDER[i]: nibbles i and i + 4 hold 2i and 2i + 1.
MARLIN_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)


def to_marlin(codes: torch.Tensor) -> torch.Tensor:
    """int4 codes [K, N] (rows in the kernel's input order) -> int32 [N, K / 8]."""
    k = codes.shape[0]
    if k % 8:
        raise ValueError(f"the int4 kernel layout needs input features in multiples of 8, got {k}")
    return pack_int32(codes.T, 4, dim=1, order=MARLIN_ORDER)


def marlin_codes(qweight: torch.Tensor) -> torch.Tensor:
    """The inverse of to_marlin: int32 [N, K / 8] -> codes [K, N]."""
    return unpack_int32(qweight, 4, dim=1, order=MARLIN_ORDER).T


def dequantize_marlin(qweight, scales, zeros, group_size: int) -> torch.Tensor:
    """The dense W [K, N] in the scales' dtype."""
    codes = marlin_codes(qweight)
    group = torch.arange(codes.shape[0], device=codes.device) // group_size
    return (codes - zeros[group]) * scales[group]


def marlin_gemm_ref(x, qweight, scales, zeros, group_size: int) -> torch.Tensor:
    """x [M, K] (columns in the weight's row order) @ W -> [M, N]."""
    return x @ dequantize_marlin(qweight, scales, zeros, group_size).to(x.dtype)
