"""The attention of the memory-profiling pass (one causal sequence, no KV cache yet): right, and
on the GPU through a fused backend whose memory grows with the tokens, not with their square."""

import pytest
import torch

from ember.models.layers.attention import Attention


def _inputs(tokens, heads, kv_heads, head_dim, device, dtype):
    gen = torch.Generator(device=device).manual_seed(0)
    return [torch.randn(tokens, n * head_dim, device=device, dtype=dtype, generator=gen)
            for n in (heads, kv_heads, kv_heads)]


def test_it_is_causal_attention_with_grouped_kv_heads():
    heads, kv_heads, head_dim, tokens = 6, 2, 16, 37
    attn = Attention(heads, head_dim, kv_heads, head_dim ** -0.5, kernels=None)
    q, k, v = _inputs(tokens, heads, kv_heads, head_dim, "cpu", torch.float32)
    out = attn(q, k, v)
    qh = q.view(tokens, heads, head_dim).transpose(0, 1)
    kh, vh = (x.view(tokens, kv_heads, head_dim).transpose(0, 1).repeat_interleave(heads // kv_heads, 0)
              for x in (k, v))
    scores = (qh @ kh.transpose(1, 2)) * head_dim ** -0.5
    scores = scores.masked_fill(torch.ones(tokens, tokens, dtype=torch.bool).triu(1), float("-inf"))
    want = (scores.softmax(-1) @ vh).transpose(0, 1).reshape(tokens, heads * head_dim)
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_the_gpu_it_does_not_hold_the_scores():
    """16 q / 8 KV heads over 16,384 tokens: the scores alone would be 16 GiB in float32."""
    heads, kv_heads, head_dim, tokens = 16, 8, 128, 16384
    attn = Attention(heads, head_dim, kv_heads, head_dim ** -0.5, kernels=None)
    q, k, v = _inputs(tokens, heads, kv_heads, head_dim, "cuda", torch.bfloat16)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    attn(q, k, v)
    torch.cuda.synchronize()
    assert torch.cuda.max_memory_allocated() - before < 2**30
