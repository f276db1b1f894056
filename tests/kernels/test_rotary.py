import pytest
import torch

from ember.kernels.rotary import apply_rotary, apply_rotary_ref


def _cos_sin_cache(max_pos, rot_dim, base=10000.0):
    inv_freq = 1.0 / base ** (torch.arange(0, rot_dim, 2, dtype=torch.float32) / rot_dim)
    freqs = torch.outer(torch.arange(max_pos, dtype=torch.float32), inv_freq)
    return torch.cat((freqs.cos(), freqs.sin()), dim=-1)


@pytest.mark.parametrize("head_dim,rot_dim", [(64, 64), (128, 128), (128, 64)])
def test_apply_rotary(device, dtype, tol, head_dim, rot_dim):
    num_tokens, hq, hk = 7, 6, 2
    # q and k are strided views of a fused qkv buffer and are rotated in place.
    qkv = torch.randn(num_tokens, hq + 2 * hk, head_dim, device=device).to(dtype)
    q, k = qkv[:, :hq], qkv[:, hq:hq + hk]
    positions = torch.tensor([0, 1, 5, 17, 300, 2, 1000], device=device)
    cache = _cos_sin_cache(1024, rot_dim).to(device)
    q_ref, k_ref = apply_rotary_ref(q.clone(), k.clone(), positions, cache)
    v_before = qkv[:, hq + hk:].clone()
    q_out, k_out = apply_rotary(q, k, positions, cache)
    assert q_out.data_ptr() == q.data_ptr() and k_out.data_ptr() == k.data_ptr()
    torch.testing.assert_close(q, q_ref, **tol(dtype))
    torch.testing.assert_close(k, k_ref, **tol(dtype))
    assert torch.equal(qkv[:, hq + hk:], v_before)  # v untouched


def test_apply_rotary_ref_matches_hf_rotate_half():
    q = torch.randn(5, 3, 64)
    k = torch.randn(5, 1, 64)
    positions = torch.tensor([3, 0, 9, 100, 7])
    cache = _cos_sin_cache(128, 64)
    freqs = cache[positions]
    cos = torch.cat((freqs[:, :32], freqs[:, :32]), -1)[:, None]
    sin = torch.cat((freqs[:, 32:], freqs[:, 32:]), -1)[:, None]

    def rotate_half(x):
        return torch.cat((-x[..., 32:], x[..., :32]), dim=-1)

    q_hf, k_hf = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
    q_ref, k_ref = apply_rotary_ref(q.clone(), k.clone(), positions, cache)
    torch.testing.assert_close(q_ref, q_hf)
    torch.testing.assert_close(k_ref, k_hf)


@pytest.mark.parametrize("fused", [True, False], ids=["q-k-side-by-side", "separate"])
def test_apply_rotary_ref_is_hf_rotate_half_bit_for_bit_in_fp32(fused):
    """The CPU's rotary rotates q and k of a fused qkv output as one view; either way its fp32
    result is HF's exactly (the greedy oracle compares against HF token for token)."""
    torch.manual_seed(0)
    hq, hk, d, half = 3, 1, 64, 32
    qkv = torch.randn(5, hq + 2 * hk, d)
    q, k = (qkv[:, :hq], qkv[:, hq:hq + hk]) if fused else (qkv[:, :hq].clone(), qkv[:, hq:hq + hk].clone())
    v_before = qkv[:, hq + hk:].clone()
    positions = torch.tensor([3, 0, 9, 100, 7])
    cache = _cos_sin_cache(128, d)
    cos = torch.cat((cache[positions, :half], cache[positions, :half]), -1)[:, None]
    sin = torch.cat((cache[positions, half:], cache[positions, half:]), -1)[:, None]

    def rotate_half(x):
        return torch.cat((-x[..., half:], x[..., :half]), dim=-1)

    q_hf, k_hf = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
    q_out, k_out = apply_rotary_ref(q, k, positions, cache)
    assert q_out is q and k_out is k
    assert torch.equal(q, q_hf) and torch.equal(k, k_hf)
    assert torch.equal(qkv[:, hq + hk:], v_before)
