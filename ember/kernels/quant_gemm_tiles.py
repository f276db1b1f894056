"""Tile sizes shared by the quantized GEMM kernels. A K tile never straddles a scale block
(a quantization group, an FP8 block), so each tile applies one scale per output column after
its dot product instead of scaling every weight element."""
from __future__ import annotations

import functools

import torch

from ember.kernels._triton import triton

_MAX_BLOCK_K = 64


def gemm_tiles(m: int, k: int, scale_block_k: int) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K) for an [m, k] input; `scale_block_k` is how many input
    features share a scale (k itself when one scale covers the whole row)."""
    block_m = min(64, max(16, triton.next_power_of_2(m)))
    block_n = 128 if m > 64 else 64
    if scale_block_k >= k:
        return block_m, block_n, _MAX_BLOCK_K
    block_k = scale_block_k & -scale_block_k  # largest power of two dividing it
    if block_k < 16:
        raise ValueError(f"scale blocks of {scale_block_k} input features are not supported "
                         "(tiles need a multiple of 16)")
    return block_m, block_n, min(block_k, _MAX_BLOCK_K)


@functools.lru_cache(maxsize=None)
def num_sms(device: torch.device) -> int:
    """Multiprocessors to spread a split K over (4 under the CPU interpreter); asked once per
    device, not at every prefill call."""
    return torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 4
