"""The Marlin-layout GEMV (quant_int_marlin_gemv.py) compiles for Hopper (sm_90) down to a cubin
through the ptxas Triton ships, without a GPU: both unpacks (the PTX one in bf16 and fp16, the
fp32 extraction in bf16 and fp32), groups of 32 (several per K step) and of 128, with and
without a step that runs past K, with and without the next step's words prefetched. Also pins
what its speed relies on: the words load as 16-byte vectors (in the whole steps), the PTX
unpack is there (lop3), and the K loop converts no tile of words or weights between layouts
(through shared memory: as many bytes again as the weight's). It may convert smaller tiles:
the activations after their 16-byte loads, and the [columns, groups] zeros and scales, which
load coalesced along the columns (the scales of groups of 32 are a quarter of the weight's
bytes). Runs in a child process: the kernel tests' conftest switches the interpreter on for
this one."""
import textwrap

import pytest

from tests.kernels.sm90_compile import compile_in_child

pytest.importorskip("triton")

_COMPILE = textwrap.dedent("""
    import json, re, torch, triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from ember.kernels.quant_int_marlin_gemv import MARLIN_GEMV_TILES as T, _marlin_gemv_kernel
    from ember.kernels.quant_int_marlin_unpack import _ASM

    results = {}
    # (activations, PTX unpack, group size, a step past K, prefetch): both unpacks with the
    # default prefetch; once without it.
    unpacks = (("bf16", True), ("fp16", True), ("bf16", False), ("fp32", False))
    variants = [(name, ptx, group, tail, T.prefetch) for name, ptx in unpacks for group in (32, 128)
                for tail in (False, True)] + [("bf16", True, 128, False, not T.prefetch)]
    for name, ptx, group, tail, prefetch in variants:
        asm, bias = _ASM[getattr(torch, {"bf16": "bfloat16", "fp16": "float16"}[name]), False] if ptx else ("", 0.0)
        pointers = dict(x_ptr="*" + name, qw_ptr="*i32", s_ptr="*" + name, z_ptr="*" + name,
                        out_ptr="*" + name, partial_ptr="*fp32", counter_ptr="*i32")
        ints = ["M", "N", "K", "STEPS_PER_SPLIT", "SPLIT_K", "stride_xm", "stride_qn", "stride_sg", "stride_om"]
        sub = min(T.words, group // 8)
        consts = dict(GROUP_SIZE=group, BLOCK_N=T.block_n, GROUPS=T.words // sub, SUB=sub, HAS_TAIL=tail,
                      PREFETCH=prefetch, ASM=asm, BIAS=bias, USE_PDL=True)  # the H200's variant
        signature = {**pointers, **{n: "i32" for n in ints}, **{n: "constexpr" for n in consts}}
        names = list(signature)
        # As the launcher specializes them: pointers, sizes and strides of real layers divisible by 16.
        aligned = {(names.index(n),): [["tt.divisibility", 16]] for n in [*pointers, *ints]
                   if n not in ("M", "STEPS_PER_SPLIT", "SPLIT_K")}
        kernel = triton.compile(ASTSource(_marlin_gemv_kernel, signature, consts, aligned),
                                target=GPUTarget("cuda", 90, 64), options=dict(num_warps=T.num_warps))
        ttgir, ptx_text = kernel.asm["ttgir"], kernel.asm["ptx"]
        loop = ttgir[ttgir.index("scf.for"):ttgir.index("scf.yield")]
        weight_tile = f"tensor<{T.block_n}x{T.words // sub}x{sub}x"
        key = f"{name}-{'ptx' if ptx else 'fp32'}-g{group}-tail{int(tail)}-prefetch{int(prefetch)}"
        results[key] = dict(
            cubin=len(kernel.asm["cubin"]), weight_tile_ops=loop.count(weight_tile),
            tile_converts=len(re.findall(r"convert_layout %\\S+ : " + re.escape(weight_tile), loop)),
            vector_loads=len(re.findall(r"ld\\.global(\\.\\w+)*\\.v4\\.b32", ptx_text)),
            lop3=ptx_text.count("lop3.b32"))
    print(json.dumps(results))
""")


def test_marlin_gemv_compiles_for_sm90():
    results = compile_in_child(_COMPILE)
    assert len(results) == 17
    for name, result in results.items():
        assert result["cubin"] > 0, name
        assert result["weight_tile_ops"] > 0, f"{name}: no weight tile of that shape in the loop to check"
        assert result["tile_converts"] == 0, f"{name}: the K loop converts a weight tile's layout"
        assert result["vector_loads"] > 0, f"{name}: the words are not loaded as 16-byte vectors"
        if "-ptx-" in name:
            assert result["lop3"] >= 4, f"{name}: the PTX unpack is missing"
