import torch

from ember.kernels.kv_cache_write import write_kv_cache, write_kv_cache_ref


def _case(device, dtype, num_tokens=13, num_heads=3, head_dim=64, num_blocks=6, block_size=16):
    slots = torch.randperm(num_blocks * block_size)[:num_tokens]
    slots[[2, 7]] = -1  # padding tokens are skipped
    # k, v as strided views of one fused buffer, like a qkv projection output.
    kv = torch.randn(num_tokens, 2 * num_heads + 1, head_dim, device=device).to(dtype)
    k, v = kv[:, :num_heads], kv[:, num_heads:2 * num_heads]
    shape = (num_blocks, block_size, num_heads, head_dim)
    k_cache = torch.full(shape, float("nan"), device=device, dtype=dtype)
    return k, v, k_cache, k_cache.clone(), slots.to(device)


def test_write_kv_cache(device, dtype):
    k, v, kc, vc, slots = _case(device, dtype)
    kc_ref, vc_ref = kc.clone(), vc.clone()
    write_kv_cache(k, v, kc, vc, slots)
    write_kv_cache_ref(k, v, kc_ref, vc_ref, slots)
    # Bit-exact copy; untouched slots stay NaN on both sides.
    assert torch.equal(kc.nan_to_num(7.0), kc_ref.nan_to_num(7.0))
    assert torch.equal(vc.nan_to_num(7.0), vc_ref.nan_to_num(7.0))
    assert kc_ref.isnan().sum() == kc.numel() - 11 * k.shape[1] * k.shape[2]


def test_write_kv_cache_ref_matches_direct_indexing():
    k, v, kc, vc, slots = _case("cpu", torch.float32)
    write_kv_cache_ref(k, v, kc, vc, slots)
    for t, s in enumerate(slots.tolist()):
        if s >= 0:
            assert torch.equal(kc[s // 16, s % 16], k[t]) and torch.equal(vc[s // 16, s % 16], v[t])
