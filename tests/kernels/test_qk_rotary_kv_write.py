import pytest
import torch

from ember.kernels.qk_rotary_kv_write import qk_rotary_kv_write, qk_rotary_kv_write_ref


def _cos_sin_cache(max_pos, rot_dim, base=10000.0):
    inv_freq = 1.0 / base ** (torch.arange(0, rot_dim, 2, dtype=torch.float32) / rot_dim)
    freqs = torch.outer(torch.arange(max_pos, dtype=torch.float32), inv_freq)
    return torch.cat((freqs.cos(), freqs.sin()), dim=-1)


def _case(device, dtype, hq=4, hk=2, d=64, num_tokens=5, num_blocks=6, block_size=4):
    qkv = torch.randn(num_tokens, hq + 2 * hk, d, device=device).to(dtype) * 3
    cache = torch.zeros(num_blocks, block_size, hk, d, device=device, dtype=dtype)
    positions = torch.tensor([0, 7, 3, 100, 31][:num_tokens], device=device)
    slots = torch.tensor([5, -1, 0, 22, 13][:num_tokens], device=device)  # -1: a padding token
    return qkv, cache, positions, slots


def _views(qkv, hq, hk):
    return qkv[:, :hq], qkv[:, hq:hq + hk], qkv[:, hq + hk:]


@pytest.mark.parametrize("qk_norm", [True, False], ids=["qwen3-qk-norm", "rotary-only"])
@pytest.mark.parametrize("write", [True, False], ids=["kv-write", "no-cache"])
def test_fused_matches_unfused_reference(device, dtype, tol, qk_norm, write):
    """Norm, rotary and cache write in one launch equal the separate torch steps, with q and k
    rewritten in place inside the qkv buffer, v untouched, padding slots not written."""
    hq, hk, d = 4, 2, 64
    qkv, cache, positions, slots = _case(device, dtype, hq, hk, d)
    cos_sin = _cos_sin_cache(128, d).to(device)
    q_w = (torch.rand(d, device=device) + 0.5).to(dtype) if qk_norm else None
    k_w = (torch.rand(d, device=device) + 0.5).to(dtype) if qk_norm else None
    qkv_ref, k_cache_ref, v_cache_ref = qkv.clone(), cache.clone(), cache.clone()
    k_cache, v_cache = cache.clone(), cache.clone()
    caches = (k_cache, v_cache, slots) if write else ()
    caches_ref = (k_cache_ref, v_cache_ref, slots) if write else ()

    q, k, v = _views(qkv, hq, hk)
    q_out, k_out = qk_rotary_kv_write(q, k, v, q_w, k_w, 1e-6, positions, cos_sin, *caches)
    qk_rotary_kv_write_ref(*_views(qkv_ref, hq, hk), q_w, k_w, 1e-6, positions, cos_sin, *caches_ref)

    assert q_out.data_ptr() == q.data_ptr() and k_out.data_ptr() == k.data_ptr()
    torch.testing.assert_close(qkv, qkv_ref, **tol(dtype))
    assert torch.equal(qkv[:, hq + hk:], qkv_ref[:, hq + hk:])
    if write:
        torch.testing.assert_close(k_cache, k_cache_ref, **tol(dtype))
        assert torch.equal(v_cache, v_cache_ref)
        untouched = torch.ones(cache.shape[0] * cache.shape[1], dtype=torch.bool)
        untouched[slots[slots >= 0].cpu()] = False
        assert torch.equal(k_cache.flatten(0, 1)[untouched.to(device)], cache.flatten(0, 1)[untouched.to(device)])


def test_fused_matches_hf_qwen3_attention_prelude(device):
    """In fp32 the kernel's q and k are transformers' Qwen3 q_norm/k_norm then rotate_half
    rotary, to within fp32 rounding."""
    from transformers.models.qwen3.modeling_qwen3 import Qwen3RMSNorm, apply_rotary_pos_emb

    hq, hk, d = 4, 2, 128
    qkv, _, positions, _ = _case(device, torch.float32, hq, hk, d)
    cos_sin = _cos_sin_cache(128, d).to(device)
    q_norm, k_norm = Qwen3RMSNorm(d, eps=1e-6).to(device), Qwen3RMSNorm(d, eps=1e-6).to(device)
    with torch.no_grad():
        q_norm.weight.uniform_(0.5, 1.5)
        k_norm.weight.uniform_(0.5, 1.5)
    q, k, v = _views(qkv.clone(), hq, hk)
    cos = torch.cat([cos_sin[positions, :d // 2]] * 2, -1)
    sin = torch.cat([cos_sin[positions, d // 2:]] * 2, -1)
    with torch.no_grad():
        # HF's layout: [batch, heads, seq, dim]; positions act as the sequence.
        q_hf, k_hf = apply_rotary_pos_emb(q_norm(q).transpose(0, 1)[None], k_norm(k).transpose(0, 1)[None],
                                          cos[None], sin[None])
    qk_rotary_kv_write(q, k, v, q_norm.weight.detach(), k_norm.weight.detach(), 1e-6, positions, cos_sin)
    torch.testing.assert_close(q, q_hf[0].transpose(0, 1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(k, k_hf[0].transpose(0, 1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cache_dtype", [torch.float8_e5m2, torch.float8_e4m3fn], ids=["e5m2", "e4m3"])
def test_fp8_cache_saturates_and_keeps_v_exact(device, dtype, cache_dtype):
    """An fp8 cache gets the rotated k (to within the format's rounding, which Triton's CPU
    interpreter does not do exactly), v's fp8-exact values unchanged, and beyond-range values
    clamped to the format's largest."""
    hq, hk, d = 2, 2, 64
    qkv, _, positions, slots = _case(device, dtype, hq, hk, d)
    qkv[:, hq + hk:] = qkv[:, hq + hk:].to(cache_dtype).to(dtype)  # v exact in fp8
    limit = torch.finfo(cache_dtype).max
    qkv[0, hq + hk, :2] = torch.tensor([2 * limit, -2 * limit]).to(dtype)
    cos_sin = _cos_sin_cache(128, d).to(device)
    caches = [torch.zeros(6, 4, hk, d, dtype=cache_dtype, device=device) for _ in range(4)]
    ref = qkv.clone()
    qk_rotary_kv_write(*_views(qkv, hq, hk), None, None, 1e-6, positions, cos_sin, caches[0], caches[1], slots)
    qk_rotary_kv_write_ref(*_views(ref, hq, hk), None, None, 1e-6, positions, cos_sin, caches[2], caches[3], slots)
    assert torch.equal(caches[1].float(), caches[3].float())
    assert caches[1][1, 1, 0, :2].float().tolist() == [limit, -limit]  # slot 5 = block 1, offset 1
    if device == "cuda":  # the hardware's conversion, as torch's
        assert torch.equal(caches[0].float(), caches[2].float())
    else:  # the interpreter may round up a binade where the mantissa carries
        torch.testing.assert_close(caches[0].float(), caches[2].float(), atol=1e-2, rtol=0.5)
