"""The Marlin-style int4 kernels compile for Hopper (sm_90) with their PTX unpack, down to a
cubin through the ptxas Triton ships, without a GPU: the interpreter the CPU tests run never
reads the inline PTX, so this is where a typo in it shows before the GPU run. Also pins what
the design relies on: the weight tile reaches a wgmma (warp_group_dot) and both loads are
software-pipelined (async copies into shared memory). Runs in a child process: the kernel
tests' conftest switches the interpreter on for this one."""
import textwrap

import pytest

from tests.kernels.sm90_compile import compile_in_child

triton = pytest.importorskip("triton")

_COMPILE = textwrap.dedent("""
    import json, sys, torch, triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from ember.kernels.quant_int_marlin_dequant import _dequantize_kernel
    from ember.kernels.quant_int_marlin_gemm import _marlin_kernel
    from ember.kernels.quant_int_marlin_unpack import _ASM

    def compile_sm90(fn, pointers, ints, consts, num_warps, num_stages):
        signature = {**pointers, **{name: "i32" for name in ints}, **{name: "constexpr" for name in consts}}
        names = list(signature)
        # As the launcher specializes them: pointers and the sizes and strides of real layers
        # divisible by 16.
        aligned = {(names.index(name),): [["tt.divisibility", 16]] for name in [*pointers, *ints] if name != "M"}
        kernel = triton.compile(ASTSource(fn, signature, consts, aligned), target=GPUTarget("cuda", 90, 64),
                                options=dict(num_warps=num_warps, num_stages=num_stages))
        ttgir = kernel.asm["ttgir"]
        return dict(wgmma="warp_group_dot" in ttgir, async_copies=ttgir.count("async_copy_global_to_local"),
                    cubin=len(kernel.asm["cubin"]))

    results = {}
    for dtype, name in ((torch.bfloat16, "bf16"), (torch.float16, "fp16")):
        for block_m, block_n, block_k, warps, stages, scaled in ((16, 64, 128, 4, 4, False),
                                                                  (64, 128, 64, 8, 3, True)):  # marlin_tiles(1), (128)
            asm, bias = _ASM[dtype, scaled]
            results[f"gemm-{name}-m{block_m}" + "-scaled" * scaled] = compile_sm90(
                _marlin_kernel, dict(x_ptr="*" + name, qw_ptr="*i32", s_ptr="*" + name, z_ptr="*" + name,
                                     out_ptr="*" + name, partial_ptr="*fp32", counter_ptr="*i32"),
                ["M", "N", "K", "TILES_PER_SPLIT", "stride_xm", "stride_qn", "stride_sg", "stride_om"],
                dict(SPLIT_K=4, GROUP_SIZE=128, SCALE_IN_UNPACK=scaled, BLOCK_M=block_m, BLOCK_N=block_n,
                     BLOCK_K=block_k, EVEN_K=True, ASM=asm, BIAS=bias, DOT_PREC="tf32"), warps, stages)
        asm, bias = _ASM[dtype, True]
        results[f"dequant-{name}"] = compile_sm90(
            _dequantize_kernel, dict(qw_ptr="*i32", s_ptr="*" + name, z_ptr="*" + name, w_ptr="*" + name),
            ["N", "K", "stride_qn", "stride_sg", "stride_wn"],
            dict(GROUP_SIZE=128, BLOCK_N=64, BLOCK_K=128, ASM=asm, BIAS=bias), 4, 1)
    print(json.dumps(results))
""")


def test_kernels_compile_for_sm90_with_ptx_unpack():
    results = compile_in_child(_COMPILE)
    for name, result in results.items():
        assert result["cubin"] > 0, name
        if name.startswith("gemm"):
            assert result["wgmma"], f"{name}: the dot did not become a wgmma"
            assert result["async_copies"] >= 2, f"{name}: the loads are not pipelined"
