"""The kernels a model's layers call, chosen once when the model is built (one LayerKernels
per model): Ember's Triton kernels on a CUDA device where Triton runs, their plain-torch
references elsewhere. Attention follows the engine's `attention_backend`."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from ember.kernels import (activation, gemv, kv_cache_write, paged_attention, qk_rotary_kv_write, rmsnorm, rotary,
                           triton_available)
from ember.kernels.paged_attention_torch import paged_attention_torch


@dataclass(frozen=True)
class LayerKernels:
    rms_norm: Callable
    fused_add_rms_norm: Callable
    rotary: Callable
    silu_and_mul: Callable
    write_kv_cache: Callable
    paged_attention: Callable
    # q/k norm + rotary + KV-cache write in one launch (ember/kernels/qk_rotary_kv_write.py);
    # None: the separate kernels above (the CPU, whose few large ops are cheaper unfused).
    qk_rotary_kv_write: Callable | None = None
    # A dense layer's one-row product (batch-1 decoding; ember/kernels/gemv.py, faster than
    # cuBLAS there on the H200); None: F.linear for every M.
    one_row_product: Callable | None = None


TRITON = LayerKernels(rmsnorm.rms_norm, rmsnorm.fused_add_rms_norm, rotary.apply_rotary, activation.silu_and_mul,
                      kv_cache_write.write_kv_cache, paged_attention.paged_attention,
                      qk_rotary_kv_write.qk_rotary_kv_write, gemv.gemv)
TORCH = LayerKernels(rmsnorm.rms_norm_ref, rmsnorm.fused_add_rms_norm_ref, rotary.apply_rotary_ref,
                     activation.silu_and_mul_ref, kv_cache_write.write_kv_cache_ref, paged_attention_torch)


def layer_kernels(device: str, attention_backend: str | None = None) -> LayerKernels:
    """`attention_backend`: "triton" or "torch"; None follows the device. EMBER_GEMV=0 leaves
    one-row products to cuBLAS."""
    on_triton = device.startswith("cuda") and triton_available()
    kernels = TRITON if on_triton else TORCH
    if not gemv.enabled():
        kernels = replace(kernels, one_row_product=None)
    if attention_backend is None or (attention_backend == "triton") == on_triton:
        return kernels
    source = TRITON if attention_backend == "triton" else TORCH
    return replace(kernels, write_kv_cache=source.write_kv_cache, paged_attention=source.paged_attention)
