"""paged_attention_torch (the torch backend: batched decodes, one call per prefill chunk) vs
paged_attention_ref, on the same NaN-poisoned paged caches as the Triton kernel's tests: a
slot no sequence position owns must never reach the output."""

import pytest
import torch

from ember.kernels.paged_attention_ref import paged_attention_ref
from ember.kernels.paged_attention_torch import paged_attention_torch
from tests.kernels.test_paged_attention import MIXED, build_case, dense_sdpa

CASES = {
    "decodes only": ([1, 1, 1, 1], [1, 17, 40, 33]),
    "mixed": MIXED,
    "one prefill": ([23], [23]),
    "prefill over a cached prefix": ([7], [50]),
}


@pytest.mark.parametrize("q_lens,seq_lens", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("heads", [(4, 4), (6, 2)], ids=["mha", "gqa"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_matches_reference_and_dense_attention(q_lens, seq_lens, heads, dtype):
    torch.manual_seed(0)
    case, dense_k, dense_v = build_case(q_lens, seq_lens, *heads, 32, dtype, "cpu")
    out = paged_attention_torch(**case)
    ref = paged_attention_ref(**case)
    assert not torch.isnan(out).any()
    tol = dict(atol=2e-3, rtol=2e-3) if dtype == torch.float32 else dict(atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(out.float(), ref.float(), **tol)
    torch.testing.assert_close(out.float(), dense_sdpa(case, dense_k, dense_v), **tol)


def test_an_fp8_cache_is_widened_to_the_query_dtype():
    torch.manual_seed(0)
    case, _, _ = build_case([1, 4], [20, 9], 4, 2, 32, torch.float32, "cpu")
    for name in ("k_cache", "v_cache"):
        case[name] = case[name].nan_to_num(0.0).to(torch.float8_e5m2)
    torch.testing.assert_close(paged_attention_torch(**case), paged_attention_ref(**case), atol=2e-3, rtol=2e-3)
