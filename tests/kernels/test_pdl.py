"""Programmatic dependent launch: each decode kernel taking USE_PDL compiles for Hopper with
the grid-dependency wait and trigger in it (and without them when off); PDL is never asked
for off a CUDA device; on a GPU, a chain of the kernels replayed from a CUDA graph with PDL
gives the plain-torch references' results."""
import textwrap

import pytest
import torch

from tests.kernels.sm90_compile import compile_in_child

pytest.importorskip("triton")

_COMPILE = textwrap.dedent("""
    import json, triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from ember.kernels.activation import _silu_and_mul_kernel
    from ember.kernels.gemv import _gemv_kernel
    from ember.kernels.paged_attention import _attn_kernel, _reduce_kernel
    from ember.kernels.qk_rotary_kv_write import _qk_rotary_kv_kernel
    from ember.kernels.rmsnorm import _rms_norm_kernel

    def ptx(fn, pointers, floats, consts, use_pdl):
        consts = dict(consts, USE_PDL=use_pdl)
        signature = {p: pointers.get(p, "fp32" if p in floats else "i32") for p in fn.arg_names if p not in consts}
        signature.update({c: "constexpr" for c in consts})
        kernel = triton.compile(ASTSource(fn, signature, consts), target=GPUTarget("cuda", 90, 64),
                                options=dict(num_warps=4, launch_pdl=use_pdl))
        text = kernel.asm["ptx"]
        return ["griddepcontrol.wait" in text, "griddepcontrol.launch_dependents" in text]

    bf16 = lambda *names: {n: "*bf16" for n in names}
    cases = {
        "gemv": (_gemv_kernel, bf16("x_ptr", "w_ptr", "b_ptr", "y_ptr") | {"s_ptr": "*fp32"}, (),
                 dict(M_PAD=1, BLOCK_N=2, BLOCK_K=2048, HAS_BIAS=False, HAS_TAIL=False, ROW_SCALE=False)),
        "gemv-4-rows-tail-fp8": (_gemv_kernel, bf16("x_ptr", "b_ptr", "y_ptr") | {"w_ptr": "*fp8e4nv", "s_ptr": "*fp32"},
                                 (), dict(M_PAD=4, BLOCK_N=4, BLOCK_K=512, HAS_BIAS=True, HAS_TAIL=True,
                                          ROW_SCALE=True)),
        "rms_norm": (_rms_norm_kernel, bf16("x_ptr", "res_ptr", "w_ptr", "out_ptr", "res_out_ptr"), ("eps",),
                     dict(BLOCK=1024, HAS_RESIDUAL=True)),
        "silu_and_mul": (_silu_and_mul_kernel, bf16("x_ptr", "out_ptr"), (), dict(BLOCK=1024)),
        "qk_rotary_kv": (_qk_rotary_kv_kernel,
                         bf16("q_ptr", "k_ptr", "v_ptr", "qw_ptr", "kw_ptr", "k_cache_ptr", "v_cache_ptr")
                         | {"pos_ptr": "*i64", "slot_ptr": "*i64", "cos_sin_ptr": "*fp32"}, ("eps",),
                         dict(HEAD_DIM=128, HALF=64, BLOCK_H=16, BLOCK_SIZE=16, HAS_NORM=True, WRITE_KV=True,
                              FP8_MAX=0.0)),
        "attention": (_attn_kernel, bf16("q_ptr", "out_ptr", "k_ptr", "v_ptr")
                      | {p: "*i32" for p in ("bt_ptr", "qsl_ptr", "seq_lens_ptr")}
                      | {p: "*fp32" for p in ("part_m_ptr", "part_l_ptr", "part_acc_ptr")}, ("scale_log2",),
                      dict(QPK=7, HEAD_DIM=128, HEAD_DIM_PAD=128, BLOCK_SIZE=16, BLOCK_M=16, BLOCK_Q=1, TILE_N=64,
                           SPLIT=True, DIRECT_MAP=True, DOT_PREC="tf32", HEAD_MAJOR=True)),
        "reduce": (_reduce_kernel, {p: "*fp32" for p in ("part_m_ptr", "part_l_ptr", "part_acc_ptr")}
                   | bf16("out_ptr") | {"qsl_ptr": "*i32"}, (), dict(SPLITS_PAD=64, HEAD_DIM=128, HEAD_DIM_PAD=128)),
    }
    print(json.dumps({name: {str(pdl): ptx(fn, pointers, floats, consts, pdl) for pdl in (False, True)}
                      for name, (fn, pointers, floats, consts) in cases.items()}))
""")


def test_decode_kernels_wait_for_the_previous_kernel_only_with_pdl():
    results = compile_in_child(_COMPILE)
    assert len(results) == 7
    for name, by_pdl in results.items():
        assert by_pdl == {"False": [False, False], "True": [True, True]}, (name, by_pdl)


def test_no_pdl_off_cuda():
    from ember.kernels.pdl import pdl_launch

    assert pdl_launch(torch.device("cpu")) == {}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_kernel_chain_in_a_cuda_graph_matches_references():
    """RMSNorm -> GEMV -> SiLU-and-mul -> GEMV -> residual add + RMSNorm, each reading what the
    previous wrote, captured and replayed: with PDL (on sm_90+) every kernel must still see its
    predecessor's output."""
    from ember.kernels.activation import silu_and_mul, silu_and_mul_ref
    from ember.kernels.gemv import gemv, gemv_ref
    from ember.kernels.rmsnorm import fused_add_rms_norm, fused_add_rms_norm_ref, rms_norm, rms_norm_ref

    torch.manual_seed(0)
    dev, dt, hidden, inter = "cuda", torch.float16, 1024, 2816
    x = torch.randn(1, hidden, device=dev, dtype=dt)
    norm_w = torch.rand(hidden, device=dev, dtype=dt) + 0.5
    up = torch.randn(2 * inter, hidden, device=dev, dtype=dt) / hidden ** 0.5
    down = torch.randn(hidden, inter, device=dev, dtype=dt) / inter ** 0.5

    def chain(norm, linear, act, add_norm):
        h = linear(act(linear(norm(x, norm_w, 1e-6), up)), down)
        return add_norm(h, x, norm_w, 1e-6)

    expected = chain(rms_norm_ref, gemv_ref, silu_and_mul_ref, fused_add_rms_norm_ref)
    chain(rms_norm, gemv, silu_and_mul, fused_add_rms_norm)  # compile before capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out, residual = chain(rms_norm, gemv, silu_and_mul, fused_add_rms_norm)
    for _ in range(3):
        x.normal_()
        expected = chain(rms_norm_ref, gemv_ref, silu_and_mul_ref, fused_add_rms_norm_ref)
        graph.replay()
        torch.testing.assert_close(residual, expected[1], atol=2e-2, rtol=2e-2)
        torch.testing.assert_close(out, expected[0], atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("m,k,block_k", [(1, 100, 128), (1, 5000, 512), (1, 4096, 512), (2, 6000, 256),
                                         (4, 300, 128), (1, 2048, 2048)])
def test_gemv_pdl_path_fetches_the_first_tile_early_and_gives_the_same_product(device, m, k, block_k):
    """With USE_PDL the GEMV loads its first weight tile (masked: it may be the whole K) before
    waiting, then the rest: K within one tile, K a multiple of the tile, K with a ragged tail.
    On the CPU the interpreter's waits are no-ops; a GPU runs the launch it would give the engine
    (PDL on sm_90+, the plain path where it has none)."""
    import triton

    from ember.kernels.gemv import _gemv_kernel, gemv_ref
    from ember.kernels.pdl import pdl_launch

    torch.manual_seed(0)
    n, block_n = 7, 2
    x = torch.randn(m, k, device=device)
    w = torch.randn(n, k, device=device)
    y = torch.empty(m, n, device=device)
    launch = pdl_launch(torch.device(device)) if device == "cuda" else {"USE_PDL": True}
    _gemv_kernel[(triton.cdiv(n, block_n),)](
        x, w, w, w, y, m, n, k, x.stride(0), w.stride(0), y.stride(0), M_PAD=triton.next_power_of_2(m),
        BLOCK_N=block_n, BLOCK_K=block_k, HAS_BIAS=False, HAS_TAIL=k % block_k != 0, ROW_SCALE=False, **launch)
    torch.testing.assert_close(y, gemv_ref(x, w), atol=1e-3, rtol=1e-3)
