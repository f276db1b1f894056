"""The decoder's attention with the fused q/k-norm + rotary + cache-write kernel gives the same
output and cache as with the separate steps, for Qwen3 (q/k norm) and Qwen2 (qkv bias)."""
import dataclasses

import pytest
import torch

from ember.kernels.qk_rotary_kv_write import qk_rotary_kv_write
from ember.models.layers.attention import AttentionMetadata, attention_metadata
from ember.models.layers.kernels import TORCH
from ember.models.layers.rotary import RotaryEmbedding
from ember.models.llama import DecoderAttention
from tests.tiny_models import tiny_config

FUSED = dataclasses.replace(TORCH, qk_rotary_kv_write=qk_rotary_kv_write)


def _attention(config, kernels, qk_norm, bias, device):
    torch.manual_seed(1)
    rope = RotaryEmbedding(config, 32 if qk_norm else 16, 256, kernels)
    attn = DecoderAttention(config, rope, (bias, False), qk_norm, kernels)
    for p in attn.parameters():
        p.data.uniform_(-0.3, 0.3) if p.dim() > 1 else p.data.uniform_(0.5, 1.5)
    attn.to(device)
    attn.attn.k_cache = torch.zeros(8, 4, attn.num_kv_heads, attn.head_dim, device=device)
    attn.attn.v_cache = torch.zeros_like(attn.attn.k_cache)
    return attn


@pytest.mark.parametrize("family,qk_norm,bias", [("qwen3", True, False), ("qwen2", False, True)])
def test_fused_prelude_matches_separate_kernels(device, family, qk_norm, bias):
    config = tiny_config(family, vocab_size=64)
    fused, separate = _attention(config, FUSED, qk_norm, bias, device), _attention(config, TORCH, qk_norm, bias, device)
    assert fused.fused_prelude is not None and separate.fused_prelude is None
    # Two sequences: a 3-token prefill continuing 2 cached tokens, and a 1-token decode.
    x = torch.randn(4, config.hidden_size, device=device)
    positions = torch.tensor([2, 3, 4, 6], device=device)
    ints = dict(dtype=torch.int32, device=device)
    meta = AttentionMetadata(slot_mapping=torch.tensor([2, 3, 4, 14], device=device),
                             query_start_loc=torch.tensor([0, 3, 4], **ints), seq_lens=torch.tensor([5, 7], **ints),
                             block_tables=torch.tensor([[0, 1], [2, 3]], **ints), max_query_len=3, max_seq_len=7)
    for attn in (fused, separate):
        attn.attn.k_cache[0, :2] = 0.25
        attn.attn.v_cache[0, :2] = -0.5
        attn.attn.k_cache[3, :2] = 0.1
        with attention_metadata(meta):
            attn.out = attn(positions, x)
    torch.testing.assert_close(fused.out, separate.out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused.attn.k_cache, separate.attn.k_cache, atol=1e-5, rtol=1e-5)
    assert torch.equal(fused.attn.v_cache, separate.attn.v_cache)
