"""Int4 words of the Marlin layout (quant_int_marlin_layout.py) -> a [BLOCK_N, BLOCK_K] tile of
q - zero in the activations' dtype, the operand the kernels hand to tl.dot (or scale).

On CUDA, in bf16 or fp16, one inline PTX block per word: per nibble pair i, a shift, lop3
((w >> 4i) & 0x000F000F | exponent: the floats 128 + q of features 2i and 2i + 1) and one
fma.rn.bf16x2 that subtracts 128 + zero: (128 + q) - (128 + z) = q - z, exact, so the zero
point costs nothing beyond the bias that has to go anyway. The block returns the eight
features as 16-bit halves (pack=1, "=h"): features 2i and 2i + 1 end up side by side along K
in the tile, so the compiler keeps each pair in its 32-bit register (compiled for sm_90: no
PRMT; a pack=2 block, whose output registers pair one feature of two words, needed 130 per
thread and K tile to re-pair them). About 3 instructions per two weights, against a shift,
mask, int-to-float conversion (quarter rate), subtract and cast per weight in plain Triton.
With `scaled`, one more fma per two weights multiplies q - zero by the scale (with -0.0 as
the addend: one rounding, as dequantizing in fp32 and casting would give), so that a kernel
can chain its dots over K (Marlin's choice) instead of scaling each dot's result.
The plain Triton path (fp32, and the CPU interpreter, which runs no PTX) computes the same
values with integer ops; the CPU tests check it, the GPU tests the PTX."""
from __future__ import annotations

import torch

from ember.kernels._triton import tl, triton

__all__ = ["unpack_asm", "unpack_int4"]

# dtype -> (PTX packed type, 1.0 in both halves, the exponent that makes a half 2**e + q, 2**e)
_PTX_TYPES = {torch.bfloat16: ("bf16x2", 0x3F803F80, 0x43004300, 128.0),
              torch.float16: ("f16x2", 0x3C003C00, 0x64006400, 1024.0)}


def _asm(kind: str, one: int, exponent: int, scaled: bool) -> str:
    """$8: the word; $9: -(bias + zero); $10 (scaled): the scale; $0..$7: features 0..7."""
    lines = ["{", ".reg .b32 a, t, one, zero, scale, neg0;", f"mov.b32 one, {one:#010x};",
             "mov.b32 neg0, 0x80008000;", "mov.b32 zero, {$9, $9};"]
    if scaled:
        lines.append("mov.b32 scale, {$10, $10};")
    for i in range(4):
        if i:
            lines.append(f"shr.u32 a, $8, {4 * i};")
        lines += [f"lop3.b32 t, {'a' if i else '$8'}, 0x000f000f, {exponent:#010x}, 0xea;",  # (a & b) | c
                  f"fma.rn.{kind} t, t, one, zero;"]
        if scaled:  # sm_80 has no mul.bf16x2: an fma with -0.0 (x * s + -0 is x * s, signs kept)
            lines.append(f"fma.rn.{kind} t, t, scale, neg0;")
        lines.append(f"mov.b32 {{${2 * i}, ${2 * i + 1}}}, t;")  # the low half: feature 2i
    return "\n".join(lines + ["}"])


_ASM = {(dtype, scaled): (_asm(kind, one, exponent, scaled), bias)
        for dtype, (kind, one, exponent, bias) in _PTX_TYPES.items() for scaled in (False, True)}


def unpack_asm(x: torch.Tensor, scaled: bool = False) -> tuple[str, float]:
    """(the PTX, its bias) for activations like x; ("", 0.0): the plain Triton path."""
    if x.device.type != "cuda" or x.dtype not in _PTX_TYPES:
        return "", 0.0
    return _ASM[x.dtype, scaled]


@triton.jit
def _nibble(words, shift: tl.constexpr, zero, scale, dtype: tl.constexpr, SCALED: tl.constexpr):
    q = ((words >> shift) & 0xF).to(tl.float32) - zero[:, None]
    if SCALED:
        q = q * scale[:, None]
    return q.to(dtype)


@triton.jit
def unpack_int4(words, zero, scale, dtype: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                SCALED: tl.constexpr, ASM: tl.constexpr, BIAS: tl.constexpr):
    """words int32 [BLOCK_N, BLOCK_K / 8], zero and scale fp32 [BLOCK_N] -> q - zero (times the
    scale if SCALED) [BLOCK_N, BLOCK_K], column w * 8 + j being feature j of word w. ASM: the
    PTX of unpack_asm(x, SCALED), or "" for plain Triton."""
    if ASM == "":
        # Feature 2i sits in nibble i, 2i + 1 in nibble i + 4 (MARLIN_ORDER).
        c0 = _nibble(words, 0, zero, scale, dtype, SCALED)
        c1 = _nibble(words, 16, zero, scale, dtype, SCALED)
        c2 = _nibble(words, 4, zero, scale, dtype, SCALED)
        c3 = _nibble(words, 20, zero, scale, dtype, SCALED)
        c4 = _nibble(words, 8, zero, scale, dtype, SCALED)
        c5 = _nibble(words, 24, zero, scale, dtype, SCALED)
        c6 = _nibble(words, 12, zero, scale, dtype, SCALED)
        c7 = _nibble(words, 28, zero, scale, dtype, SCALED)
    else:
        neg_zero = (-(zero + BIAS)).to(dtype)[:, None]  # 128 + z is exact in bf16 (1024 + z in fp16)
        # Eight outputs of the activations' dtype, spelled out: the parameter `dtype` arrives
        # wrapped as a constexpr, which the op's tuple does not take.
        if SCALED:
            c0, c1, c2, c3, c4, c5, c6, c7 = tl.inline_asm_elementwise(
                ASM, "=h,=h,=h,=h,=h,=h,=h,=h,r,h,h", [words, neg_zero, scale.to(dtype)[:, None]],
                dtype=(neg_zero.dtype, neg_zero.dtype, neg_zero.dtype, neg_zero.dtype, neg_zero.dtype, neg_zero.dtype,
                       neg_zero.dtype, neg_zero.dtype), is_pure=True, pack=1)
        else:
            c0, c1, c2, c3, c4, c5, c6, c7 = tl.inline_asm_elementwise(
                ASM, "=h,=h,=h,=h,=h,=h,=h,=h,r,h", [words, neg_zero],
                dtype=(neg_zero.dtype, neg_zero.dtype, neg_zero.dtype, neg_zero.dtype, neg_zero.dtype, neg_zero.dtype,
                       neg_zero.dtype, neg_zero.dtype), is_pure=True, pack=1)
    # Joined, the features of a word are its last axes, [BLOCK_N, words, 2, 2, 2], feature
    # 4 * a + 2 * b + c at [a, b, c]: join adds its axis last, so the outermost join picks c.
    tile = tl.join(tl.join(tl.join(c0, c4), tl.join(c2, c6)), tl.join(tl.join(c1, c5), tl.join(c3, c7)))
    return tl.reshape(tile, [BLOCK_N, BLOCK_K])
