"""fp8 e4m3 values widened to bf16 in registers by integer bit moves (Triton's own conversion
goes through f16 and the conversion units), for the W8A16 kernel's wgmma operand. Inline PTX:
compiled kernels only (the interpreter never runs it), so callers take Triton's `.to` for other
dtypes and on the CPU. Measured on the H200 in session 6 and not used where it did not win: the
one-row GEMV over e4m3 weights (103 us a 7B layer against 85 with Triton's conversion) and the
decode attention over an e4m3 cache (nano 0.93x the bf16 cache either way)."""
from __future__ import annotations

from ember.kernels._triton import tl, triton

__all__ = ["e4m3_to_bf16"]


@triton.jit
def e4m3_to_bf16(w):
    """Exact e4m3 -> bf16 for four values per instruction group, on the integer units: Triton's
    conversion goes through f16 (cvt.rn.f16x2.e4m3x2, then one cvt.bf16.f16 per value), and
    conversions issue at a quarter of the integer rate on Hopper, which a weight-streaming kernel
    converting every weight feels. Each byte moves to the high byte of a 16-bit lane (prmt), its
    exponent and mantissa shift into bf16's fields beside the sign: that is the value times
    2^-120 (bf16's exponent bias is 127, e4m3's 7; subnormals included), and one bf16x2
    multiply by 2^120 (exact: a power of two, the result normal; an fma adding -0, which keeps
    the sign of zeros: sm_89 has no bf16x2 multiply) restores it. The two NaN codes become
    +-480 (checkpoints hold none)."""
    return tl.inline_asm_elementwise(
        """{
        .reg .b32 lo, hi, t, bias, zero;
        mov.b32 bias, 0x7B807B80;
        mov.b32 zero, 0x80008000;
        prmt.b32 lo, $2, 0, 0x1404;
        prmt.b32 hi, $2, 0, 0x3424;
        shr.b32 t, lo, 4;
        and.b32 t, t, 0x07F007F0;
        and.b32 lo, lo, 0x80008000;
        or.b32 lo, lo, t;
        fma.rn.bf16x2 $0, lo, bias, zero;
        shr.b32 t, hi, 4;
        and.b32 t, t, 0x07F007F0;
        and.b32 hi, hi, 0x80008000;
        or.b32 hi, hi, t;
        fma.rn.bf16x2 $1, hi, bias, zero;
        }""", "=r,=r,r", [w.to(tl.uint8, bitcast=True)], dtype=tl.bfloat16, is_pure=True, pack=4)
