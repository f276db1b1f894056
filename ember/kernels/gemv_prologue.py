"""The one-row GEMV (ember/kernels/gemv.py) with the small kernel that ran before it folded into
its prologue, for batch-1 decoding: each of those kernels is ~2 us plus a launch gap in the
decode graph, four per layer. The product's input row is computed per K tile as the weight
streams, never written out:

- SiLU-and-mul (down_proj): x[k] = silu(gate[k]) * up[k] from gate_up's output [1, 2K].
- residual add + RMSNorm (qkv_proj after input_layernorm, gate_up_proj after
  post_attention_layernorm): s = hidden + residual; every program first reduces sum(s^2) over K
  (a few KiB, from L2), then x = s * rsqrt(mean(s^2) + eps) * norm_weight. Program 0 writes s,
  the next residual, into a new tensor (never over an input the other programs still read).

Both round where the separate kernels round (ember/kernels/activation.py, rmsnorm.py), so x is
the row those would have written. One row only; Linear uses these for dense weights when
EMBER_GEMV_PROLOGUE=1 (off by default: not measured on GPU yet)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ember.kernels._triton import require_triton, tl, triton
from ember.kernels.activation import silu_and_mul_ref
from ember.kernels.gemv import GemvKnobs
from ember.kernels.rmsnorm import fused_add_rms_norm_ref, rms_norm_ref

__all__ = ["add_rms_norm_gemv", "add_rms_norm_gemv_ref", "silu_and_mul_gemv", "silu_and_mul_gemv_ref"]

@triton.jit
def _load(ptr, cols, K, MASK_K: tl.constexpr):
    return tl.load(ptr + cols, mask=cols < K, other=0.0) if MASK_K else tl.load(ptr + cols)


@triton.jit
def _residual_sum(src_ptr, res_ptr, cols, K, HAS_RESIDUAL: tl.constexpr, MASK_K: tl.constexpr):
    """hidden + residual over one K tile, rounded to the activation dtype as HF adds."""
    s = _load(src_ptr, cols, K, MASK_K)
    if HAS_RESIDUAL:
        s = (s.to(tl.float32) + _load(res_ptr, cols, K, MASK_K).to(tl.float32)).to(s.dtype)
    return s


@triton.jit
def _inv_rms(src_ptr, res_ptr, res_out_ptr, K, eps, res_out_end, offs_k,
             BLOCK_K: tl.constexpr, HAS_RESIDUAL: tl.constexpr, HAS_TAIL: tl.constexpr):
    """rsqrt(mean(s^2) + eps) of the whole row; stores s below res_out_end (K in program 0,
    0 in the others)."""
    sum_sq = tl.zeros([BLOCK_K], tl.float32)
    k_whole = (K // BLOCK_K) * BLOCK_K
    for k0 in range(0, k_whole, BLOCK_K):
        s = _residual_sum(src_ptr, res_ptr, k0 + offs_k, K, HAS_RESIDUAL, False)
        if HAS_RESIDUAL:
            tl.store(res_out_ptr + k0 + offs_k, s, mask=k0 + offs_k < res_out_end)
        sum_sq += s.to(tl.float32) * s.to(tl.float32)
    if HAS_TAIL:
        cols = k_whole + offs_k
        s = _residual_sum(src_ptr, res_ptr, cols, K, HAS_RESIDUAL, True)
        if HAS_RESIDUAL:
            tl.store(res_out_ptr + cols, s, mask=cols < res_out_end)
        sum_sq += s.to(tl.float32) * s.to(tl.float32)
    return tl.rsqrt(tl.sum(sum_sq, 0) / K + eps)


@triton.jit
def _input_tile(src_ptr, res_ptr, norm_w_ptr, cols, K, inv_rms,
                NORM: tl.constexpr, HAS_RESIDUAL: tl.constexpr, MASK_K: tl.constexpr):
    """The product's input over one K tile, in fp32 after rounding to the activation dtype."""
    # One return statement: compiled Triton wants every return of a function to agree in type.
    if NORM:
        s = _residual_sum(src_ptr, res_ptr, cols, K, HAS_RESIDUAL, MASK_K)
        normed = (s.to(tl.float32) * inv_rms).to(s.dtype).to(tl.float32)  # the cast HF does before * weight
        x = (normed * _load(norm_w_ptr, cols, K, MASK_K).to(tl.float32)).to(s.dtype)
    else:
        gate = _load(src_ptr, cols, K, MASK_K)
        g = gate.to(tl.float32)
        act = (g / (1.0 + tl.exp(-g))).to(gate.dtype).to(tl.float32)
        x = (act * _load(src_ptr + K, cols, K, MASK_K).to(tl.float32)).to(gate.dtype)
    return x.to(tl.float32)


@triton.jit
def _tile_product(acc, w_rows, row_ok, src_ptr, res_ptr, norm_w_ptr, cols, K, inv_rms,
                  NORM: tl.constexpr, HAS_RESIDUAL: tl.constexpr, MASK_K: tl.constexpr):
    w_mask = row_ok[:, None] & (cols < K)[None, :] if MASK_K else row_ok[:, None]
    w = tl.load(w_rows + cols[None, :], mask=w_mask, other=0.0).to(tl.float32)
    x = _input_tile(src_ptr, res_ptr, norm_w_ptr, cols, K, inv_rms, NORM, HAS_RESIDUAL, MASK_K)
    return acc + tl.sum(w * x[None, :], 1)


@triton.jit
def _gemv_prologue_kernel(src_ptr, res_ptr, norm_w_ptr, res_out_ptr, w_ptr, b_ptr, y_ptr, N, K, stride_wn, eps,
                          NORM: tl.constexpr, HAS_RESIDUAL: tl.constexpr, BLOCK_N: tl.constexpr,
                          BLOCK_K: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_TAIL: tl.constexpr):
    """NORM: the add + RMSNorm prologue (src: hidden, res: residual); else SiLU-and-mul (src:
    gate_up). The rest is gemv.py's one-row walk: whole K tiles unmasked, then a masked tail."""
    pid = tl.program_id(0)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    offs_k = tl.arange(0, BLOCK_K)
    w_rows = w_ptr + rows.to(tl.int64)[:, None] * stride_wn
    inv_rms = 1.0
    if NORM:
        inv_rms = _inv_rms(src_ptr, res_ptr, res_out_ptr, K, eps, tl.where(pid == 0, K, 0), offs_k, BLOCK_K,
                           HAS_RESIDUAL, HAS_TAIL)
    acc = tl.zeros([BLOCK_N], tl.float32)
    k_whole = (K // BLOCK_K) * BLOCK_K
    for k0 in range(0, k_whole, BLOCK_K):
        acc = _tile_product(acc, w_rows, row_ok, src_ptr, res_ptr, norm_w_ptr, k0 + offs_k, K, inv_rms,
                            NORM, HAS_RESIDUAL, False)
    if HAS_TAIL:
        acc = _tile_product(acc, w_rows, row_ok, src_ptr, res_ptr, norm_w_ptr, k_whole + offs_k, K, inv_rms,
                            NORM, HAS_RESIDUAL, True)
    if HAS_BIAS:
        acc += tl.load(b_ptr + rows, mask=row_ok, other=0.0).to(tl.float32)
    tl.store(y_ptr + rows, acc.to(y_ptr.dtype.element_ty), mask=row_ok)


def _row(t: torch.Tensor) -> torch.Tensor:
    assert t.dim() == 2 and t.shape[0] == 1, "one row"
    return t if t.stride(1) == 1 else t.contiguous()


def _launch(src, residual, norm_weight, res_out, eps, weight, bias, norm, k, knobs):
    require_triton()
    n = weight.shape[0]
    assert weight.shape[1] == k and weight.stride(1) == 1
    block_n, elements, num_warps = knobs or GemvKnobs(4, 8192, 4)
    y = torch.empty(1, n, dtype=src.dtype, device=src.device)
    block_k = min(elements // block_n, triton.next_power_of_2(k))
    _gemv_prologue_kernel[(triton.cdiv(n, block_n),)](
        src, residual if residual is not None else src, norm_weight if norm_weight is not None else src,
        res_out if res_out is not None else src, weight, bias if bias is not None else weight, y, n, k,
        weight.stride(0), eps, NORM=norm, HAS_RESIDUAL=residual is not None, BLOCK_N=block_n, BLOCK_K=block_k,
        HAS_BIAS=bias is not None, HAS_TAIL=k % block_k != 0, num_warps=num_warps,
    )
    return y


def silu_and_mul_gemv(gate_up: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                      knobs: GemvKnobs | None = None) -> torch.Tensor:
    """silu(gate) * up, then @ weight^T (+ bias): gate_up [1, 2K] (gate first), weight [N, K]
    -> [1, N] in gate_up's dtype. The launch knobs are gemv()'s."""
    gate_up = _row(gate_up)
    k = weight.shape[1]
    assert gate_up.shape[1] == 2 * k
    return _launch(gate_up, None, None, None, 0.0, weight, bias, False, k, knobs)


def add_rms_norm_gemv(hidden: torch.Tensor, residual: torch.Tensor | None, norm_weight: torch.Tensor, eps: float,
                      weight: torch.Tensor, bias: torch.Tensor | None = None, knobs: GemvKnobs | None = None):
    """(rms_norm(hidden + residual) @ weight^T (+ bias), hidden + residual) for one row [1, K]:
    the product and the next residual (a new tensor). Without a residual (the first layer) the
    norm is of hidden alone and hidden is the residual returned."""
    hidden = _row(hidden)
    k = hidden.shape[1]
    assert norm_weight.shape == (k,) and norm_weight.dtype == hidden.dtype
    if residual is None:
        return _launch(hidden, None, norm_weight, None, eps, weight, bias, True, k, knobs), hidden
    residual = _row(residual)
    assert residual.shape == hidden.shape and residual.dtype == hidden.dtype
    new_residual = torch.empty_like(hidden, memory_format=torch.contiguous_format)
    y = _launch(hidden, residual, norm_weight, new_residual, eps, weight, bias, True, k, knobs)
    return y, new_residual


def silu_and_mul_gemv_ref(gate_up: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None):
    return F.linear(silu_and_mul_ref(gate_up), weight, bias)


def add_rms_norm_gemv_ref(hidden, residual, norm_weight, eps: float, weight, bias=None):
    if residual is None:
        return F.linear(rms_norm_ref(hidden, norm_weight, eps), weight, bias), hidden
    normed, new_residual = fused_add_rms_norm_ref(hidden, residual, norm_weight, eps)
    return F.linear(normed, weight, bias), new_residual
