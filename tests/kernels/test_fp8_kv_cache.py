"""An fp8 KV cache (kv_cache_dtype fp8_e5m2 / fp8_e4m3): the write kernel stores what its
reference stores, saturating instead of overflowing, and paged attention reads it back like its
reference. The written values are exact in fp8: rounding is the hardware's conversion, and
Triton's CPU interpreter gets it wrong where rounding carries into the exponent."""
import pytest
import torch

from ember.kernels.kv_cache_write import write_kv_cache, write_kv_cache_ref
from ember.kernels.paged_attention import DECODE, _block_config, paged_attention, paged_attention_ref
from tests.kernels.test_paged_attention import MIXED, build_case

FP8 = [torch.float8_e5m2, torch.float8_e4m3fn]


@pytest.mark.parametrize("cache_dtype", FP8, ids=["e5m2", "e4m3"])
def test_write_fp8(device, dtype, cache_dtype):
    k, v = torch.randn(2, 9, 2, 64).to(cache_dtype).to(device, dtype)
    limit = torch.finfo(cache_dtype).max
    k[0, 0, :2] = torch.tensor([2 * limit, -2 * limit]).to(dtype)  # beyond the format's largest value
    slots = torch.tensor([3, 17, -1, 40, 5, 6, 60, 61, 2], device=device)
    caches = [torch.zeros(4, 16, 2, 64, dtype=cache_dtype, device=device) for _ in range(4)]
    write_kv_cache(k, v, caches[0], caches[1], slots)
    write_kv_cache_ref(k, v, caches[2], caches[3], slots)
    for got, expected in ((caches[0], caches[2]), (caches[1], caches[3])):
        assert torch.equal(got.float(), expected.float())
    assert caches[0][0, 3, 0, :2].float().tolist() == [limit, -limit]


@pytest.mark.parametrize("cache_dtype", FP8, ids=["e5m2", "e4m3"])
def test_paged_attention_over_fp8_cache(device, dtype, tol, cache_dtype):
    case, _, _ = build_case(*MIXED, 4, 2, 64, dtype, device)
    case["k_cache"], case["v_cache"] = case["k_cache"].to(cache_dtype), case["v_cache"].to(cache_dtype)
    ref = paged_attention_ref(**case)
    out = paged_attention(**case)
    n = int(case["query_start_loc"][-1])
    torch.testing.assert_close(out[:n].float(), ref[:n].float(), **tol(dtype))


@pytest.mark.parametrize("num_splits", [None, 3])
def test_decode_over_fp8_cache_in_its_wider_key_tiles(device, dtype, tol, num_splits):
    """A decode batch over an 8-bit cache steps DecodeTuning.tile_n_8bit keys at a time (twice
    the 16-bit tile): lengths that end mid-tile and pieces of a split still read as the reference."""
    case, _, _ = build_case([1] * 4, [1, 130, 257, 600], 4, 2, 64, dtype, device)
    case["k_cache"], case["v_cache"] = (c.to(torch.float8_e4m3fn) for c in (case["k_cache"], case["v_cache"]))
    assert _block_config(2, 64, 1, cache_itemsize=1)[2] == DECODE.tile_n_8bit > DECODE.tile_n
    ref = paged_attention_ref(**case)
    out = paged_attention(**case, num_splits=num_splits)
    torch.testing.assert_close(out.float(), ref.float(), **tol(dtype))
