"""Attention over the paged KV cache. The model runner publishes one AttentionMetadata per
forward pass; every attention layer writes its new K/V into its cache slots, then attends over
the cache. The same path serves prefill, chunked prefill, prefix-cache hits and decode."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ember.models.layers.kernels import LayerKernels


@dataclass
class AttentionMetadata:
    slot_mapping: torch.Tensor      # int64 [num_tokens]: cache slot of each new token, -1 = none
    query_start_loc: torch.Tensor   # int32 [num_seqs + 1]
    seq_lens: torch.Tensor          # int32 [num_seqs]: context length including the new tokens
    block_tables: torch.Tensor      # int32 [num_seqs, max_blocks]
    max_query_len: int
    max_seq_len: int


_metadata: AttentionMetadata | None = None


@contextmanager
def attention_metadata(meta: AttentionMetadata | None):
    global _metadata
    previous, _metadata = _metadata, meta
    try:
        yield
    finally:
        _metadata = previous


class Attention(nn.Module):
    def __init__(self, num_heads: int, head_dim: int, num_kv_heads: int, scale: float, kernels: LayerKernels):
        super().__init__()
        self.kernels = kernels
        self.num_heads, self.head_dim, self.num_kv_heads = num_heads, head_dim, num_kv_heads
        self.scale = scale
        # Views into the engine's cache, attached once it is allocated.
        self.k_cache: torch.Tensor | None = None
        self.v_cache: torch.Tensor | None = None

    def cache_slots(self) -> tuple | None:
        """(k_cache, v_cache, slot_mapping) where this step's new K/V go, for a caller that
        writes them itself (a fused kernel); None without a cache (the profiling pass)."""
        meta = _metadata
        if meta is None or self.k_cache is None:
            return None
        return self.k_cache, self.v_cache, meta.slot_mapping

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kv_written: bool = False) -> torch.Tensor:
        """kv_written: the caller already put k and v into cache_slots()."""
        q = q.view(-1, self.num_heads, self.head_dim)
        k = k.view(-1, self.num_kv_heads, self.head_dim)
        v = v.view(-1, self.num_kv_heads, self.head_dim)
        meta = _metadata
        if meta is None or self.k_cache is None:
            return self._causal_without_cache(q, k, v)
        if not kv_written:
            self.kernels.write_kv_cache(k, v, self.k_cache, self.v_cache, meta.slot_mapping)
        out = self.kernels.paged_attention(q, self.k_cache, self.v_cache, meta.block_tables, meta.query_start_loc,
                     meta.seq_lens, self.scale, meta.max_query_len, meta.max_seq_len)
        return out.view(-1, self.num_heads * self.head_dim)

    def _causal_without_cache(self, q, k, v) -> torch.Tensor:
        """One causal sequence and no cache: the memory-profiling pass before the cache exists.
        4-D inputs: SDPA's fused backends take no others, and its math fallback would hold the
        [heads, tokens, tokens] scores, a peak that sized the cache smaller by as much (112 GiB,
        out of memory, at 32,768 tokens of the 7B shape)."""
        out = F.scaled_dot_product_attention(q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None],
                                             is_causal=True, scale=self.scale,
                                             enable_gqa=self.num_heads != self.num_kv_heads)
        return out[0].transpose(0, 1).reshape(-1, self.num_heads * self.head_dim)
