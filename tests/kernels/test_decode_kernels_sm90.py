"""The decode step's own kernels compile for Hopper (sm_90) down to a cubin through the ptxas
Triton ships, without a GPU: the interpreter the CPU tests run accepts Python that compiled
Triton refuses (a jit function whose returns differ in type across a constexpr branch did, in
the GEMV). The one-row GEMV and the few-row one, with and without a ragged K tail, on bf16 and
on e4m3 weights; the decode attention with and without split-K, on a bf16 and an e4m3 cache.
Runs in a child process: the kernel tests' conftest switches the interpreter on for this one."""
import textwrap

import pytest

from tests.kernels.sm90_compile import compile_in_child

pytest.importorskip("triton")

_COMPILE = textwrap.dedent("""
    import json, triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from ember.kernels.gemv import _gemv_kernel
    from ember.kernels.paged_attention import _attn_kernel

    def cubin_bytes(fn, types, consts, num_warps, num_stages):
        # types: the runtime parameters' ("i32" where none is given)
        params = fn.arg_names
        signature = {p: types.get(p, "i32") for p in params if p not in consts}
        signature.update({c: "constexpr" for c in consts})
        kernel = triton.compile(ASTSource(fn, signature, consts), target=GPUTarget("cuda", 90, 64),
                                options=dict(num_warps=num_warps, num_stages=num_stages))
        return len(kernel.asm["cubin"])

    results = {}
    # bf16 weights, and e4m3 ones with row scales.
    for weight, scaled in (("bf16", False), ("fp8e4nv", True)):
        for m_pad in (1, 4):
            for tail in (False, True):
                results[f"gemv-{weight}-m{m_pad}-tail{int(tail)}"] = cubin_bytes(
                    _gemv_kernel, {"x_ptr": "*bf16", "w_ptr": "*" + weight, "s_ptr": "*fp32", "b_ptr": "*bf16",
                                   "y_ptr": "*bf16"},
                    dict(M_PAD=m_pad, BLOCK_N=2, BLOCK_K=2048 // m_pad, HAS_BIAS=True, HAS_TAIL=tail,
                         ROW_SCALE=scaled), 4, 3)
    # A bf16 cache, and an e4m3 one.
    for cache in ("bf16", "fp8e4nv"):
        attention_types = {**{p: "*bf16" for p in ("q_ptr", "out_ptr")}, **{p: "*" + cache for p in ("k_ptr", "v_ptr")},
                           **{p: "*i32" for p in ("bt_ptr", "qsl_ptr", "seq_lens_ptr")},
                           **{p: "*fp32" for p in ("part_m_ptr", "part_l_ptr", "part_acc_ptr")}, "scale_log2": "fp32"}
        for split in (False, True):
            results[f"decode-attention-{cache}-split{int(split)}"] = cubin_bytes(
                _attn_kernel, attention_types,
                dict(QPK=7, HEAD_DIM=128, HEAD_DIM_PAD=128, BLOCK_SIZE=16, BLOCK_M=16, BLOCK_Q=1, TILE_N=64,
                     SPLIT=split, DIRECT_MAP=True, DOT_PREC="tf32", HEAD_MAJOR=True), 4, 2)
    print(json.dumps(results))
""")


def test_decode_kernels_compile_for_sm90():
    results = compile_in_child(_COMPILE)
    assert len(results) == 12 and all(size > 0 for size in results.values()), results
