"""The Marlin-layout GEMV (quant_int_marlin_gemv.py) compiles for Hopper (sm_90) down to a cubin
through the ptxas Triton ships, without a GPU: with the PTX unpack (bf16, fp16) and the plain
one (fp32), with and without a step that runs past K. Also pins what its speed relies on: the
words load as 16-byte vectors (in the whole steps, the ragged tail's mask aside), the unpack is the PTX's lop3 (not an int-to-float
conversion per code), and the K loop converts no tile of words or unpacked weights between
layouts (through shared memory: as many bytes again as the weight's). It may convert the
[columns, groups] tiles of zeros, scales and group sums: the scales of groups of 32 are a
quarter of the weight's bytes, loaded coalesced along the columns (threads of the words'
layout run along K). Runs in a child process: the kernel tests' conftest switches the interpreter on for
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
    for dtype, name in ((torch.bfloat16, "bf16"), (torch.float16, "fp16"), (torch.float32, "fp32")):
        asm, bias = _ASM[dtype, False] if dtype in (torch.bfloat16, torch.float16) else ("", 0.0)
        for tail in (False, True):
            pointers = dict(x_ptr="*" + name, qw_ptr="*i32", s_ptr="*" + name, z_ptr="*" + name,
                            out_ptr="*" + name, partial_ptr="*fp32", counter_ptr="*i32")
            ints = ["M", "N", "K", "STEPS_PER_SPLIT", "SPLIT_K", "stride_xm", "stride_qn", "stride_sg", "stride_om"]
            # Groups of 32 at the default step: sub-blocks of 4 words, several per step.
            consts = dict(GROUP_SIZE=32, BLOCK_N=T.block_n, GROUPS=T.words // 4, SUB=4, HAS_TAIL=tail,
                          ASM=asm, BIAS=bias)
            signature = {**pointers, **{n: "i32" for n in ints}, **{n: "constexpr" for n in consts}}
            names = list(signature)
            # As the launcher specializes them: pointers, sizes and strides of real layers divisible by 16.
            aligned = {(names.index(n),): [["tt.divisibility", 16]] for n in [*pointers, *ints]
                       if n not in ("M", "STEPS_PER_SPLIT", "SPLIT_K")}
            kernel = triton.compile(ASTSource(_marlin_gemv_kernel, signature, consts, aligned),
                                    target=GPUTarget("cuda", 90, 64), options=dict(num_warps=T.num_warps))
            ttgir, ptx = kernel.asm["ttgir"], kernel.asm["ptx"]
            loop = ttgir[ttgir.index("scf.for"):ttgir.index("scf.yield")]
            results[f"{name}-tail{int(tail)}"] = dict(
                cubin=len(kernel.asm["cubin"]),
                tile_converts=len(re.findall(r"convert_layout %\\S+ : tensor<\\d+x\\d+x\\d+x", loop)),
                vector_loads=len(re.findall(r"ld\\.global(\\.\\w+)*\\.v4\\.b32", ptx)), lop3=ptx.count("lop3.b32"))
    print(json.dumps(results))
""")


def test_marlin_gemv_compiles_for_sm90():
    results = compile_in_child(_COMPILE)
    assert len(results) == 6
    for name, result in results.items():
        assert result["cubin"] > 0, name
        assert result["tile_converts"] == 0, f"{name}: the K loop converts a weight tile's layout"
        assert result["vector_loads"] > 0, f"{name}: the words are not loaded as 16-byte vectors"
        if not name.startswith("fp32"):
            assert result["lop3"] >= 4, f"{name}: the PTX unpack is missing"
