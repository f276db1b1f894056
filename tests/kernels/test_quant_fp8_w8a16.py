"""The weight-only FP8 kernel (W8A16, quant_fp8_w8a16_gemm.py) against the plain-torch
reference (quant_fp8_gemm.fp8_gemm_ref): per-tensor and block-wise scales, with and without
split-K, and every e4m3 value widened exactly. Under Triton's interpreter in fp32 and fp16
(Triton's own conversion); on the GPU in bf16 too, where the bit-level widening runs; and
compiled for sm_90 without a GPU."""
import os
import subprocess
import sys

import pytest
import torch

from ember.kernels.quant_fp8_gemm import fp8_gemm_ref
from ember.kernels.quant_fp8_w8a16_gemm import DEFAULT_W8A16_TILES, fp8_w8a16_gemm
from ember.kernels.quant_split_k import split_k_counters

K, N = 512, 200
SPLIT = DEFAULT_W8A16_TILES._replace(block_n=32, block_k=64, num_stages=2, programs_per_sm=8)
UNSPLIT = DEFAULT_W8A16_TILES._replace(programs_per_sm=0)
CONVERT = DEFAULT_W8A16_TILES._replace(bit_widen=False)
# The default tiles are run by the tests below (every e4m3 value, 7B shapes).
TILES = {"split": SPLIT, "unsplit": UNSPLIT, "triton-convert": CONVERT}


def _weights(device, k, n, block_k, parts=3):
    weight = torch.randn(n, k).to(torch.float8_e4m3fn).to(device)
    scale = (torch.rand(parts, -(-k // block_k)) * 0.1).to(device)
    scale_row = torch.randint(0, parts, (n,), dtype=torch.int32).to(device)
    return weight, scale, scale_row


@pytest.mark.parametrize("tiles", list(TILES.values()), ids=list(TILES))
@pytest.mark.parametrize("m", [1, 20, 130])
@pytest.mark.parametrize("block_k", [K, 128, 32], ids=["per-tensor", "block128", "block32"])
def test_fp8_w8a16_gemm(device, dtype, block_k, m, tiles):
    weight, scale, scale_row = _weights(device, K, N, block_k)
    x = torch.randn(m, K, device=device).to(dtype)
    out = fp8_w8a16_gemm(x, weight, scale, scale_row, block_k, tiles)
    assert out.dtype == dtype and out.shape == (m, N)
    ref = fp8_gemm_ref(x.float(), weight, scale, scale_row, block_k)
    # fp32 accumulation of exact products: only the output's rounding (and tf32 in fp32 on the GPU).
    torch.testing.assert_close(out.float(), ref, rtol=1.6e-2 if dtype == torch.bfloat16 else 2e-3, atol=2e-2)


def test_split_k_leaves_counters_zeroed_and_sums_in_order(device):
    """The last program of a tile resets its counter (the next call needs no memset) and adds
    the slices in a fixed order: repeated calls agree bit for bit."""
    weight, scale, scale_row = _weights(device, K, N, K)
    x = torch.randn(3, K, device=device)
    first = fp8_w8a16_gemm(x, weight, scale, scale_row, K, SPLIT)
    for _ in range(3):
        assert torch.equal(fp8_w8a16_gemm(x, weight, scale, scale_row, K, SPLIT), first)
    assert not split_k_counters(torch.device(device)).any()


@pytest.mark.parametrize("tiles", [DEFAULT_W8A16_TILES, CONVERT], ids=["default", "triton-convert"])
def test_every_e4m3_value_widens_exactly(device, tiles):
    """Row n of the weight starts with the e4m3 code n (all 254 finite ones, subnormals and
    both zeros included); one-hot activations read that column back through the kernel."""
    codes = torch.tensor([c for c in range(256) if c & 0x7F != 0x7F], dtype=torch.uint8)
    weight = torch.randn(len(codes), 128).to(torch.float8_e4m3fn)
    weight[:, 0] = codes.view(torch.float8_e4m3fn)
    x = torch.zeros(16, 128)
    x[:, 0] = 1.0
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    out = fp8_w8a16_gemm(x.to(device, dtype), weight.to(device), torch.ones(1, 1, device=device),
                         torch.zeros(len(codes), dtype=torch.int32, device=device), 128, tiles)
    want = weight[:, 0].float().expand(16, -1)
    assert torch.equal(out.float().cpu(), want)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("k, n", [(3584, 4608), (18944, 3584)], ids=["7b-qkv", "7b-down"])
@pytest.mark.parametrize("block_k", [None, 128], ids=["per-tensor", "block128"])
def test_w8a16_at_7b_shapes_on_gpu(k, n, block_k):
    """At a 7B layer's shapes (split K over up to a few hundred programs): within bf16's
    rounding of the reference, and the same bits on a second call."""
    block_k = block_k or k
    weight = (torch.randn(n, k, device="cuda") * 100).clamp(-448, 448).to(torch.float8_e4m3fn)
    scale = torch.rand(-(-n // 128), -(-k // block_k), device="cuda") * 1e-3
    scale_row = (torch.arange(n, device="cuda") // 128).int()
    for m in (1, 4, 16, 64, 128):
        x = torch.randn(m, k, device="cuda").bfloat16()
        ref = fp8_gemm_ref(x.float(), weight, scale, scale_row, block_k)
        out = fp8_w8a16_gemm(x, weight, scale, scale_row, block_k)
        error = (out.float() - ref).norm() / ref.norm()
        assert error < 1e-2, f"M = {m}: relative error {error:.2e}"
        assert torch.equal(fp8_w8a16_gemm(x, weight, scale, scale_row, block_k), out)


# Run apart from the kernel tests, whose conftest switched Triton to its interpreter.
_COMPILE_SM90 = """
import sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from ember.kernels.quant_fp8_w8a16_gemm import DEFAULT_W8A16_TILES as t, _w8a16_kernel, pipeline_stages

element, block_m, bit_widen = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
signature = {"x_ptr": f"*{element}", "w_ptr": "*fp8e4nv", "s_ptr": "*fp32", "srow_ptr": "*i32",
             "out_ptr": f"*{element}", "partial_ptr": "*fp32", "counter_ptr": "*i32", "M": "i32", "N": "i32",
             "K": "i32", "K_SPLIT": "i32", "SPLIT_K": "i32", "stride_xm": "i32", "stride_wn": "i32", "stride_sr": "i32",
             "stride_sk": "i32", "stride_om": "i32"}
constants = dict(SCALE_BLOCK_K=128, ROW_SCALE=False, BLOCK_M=block_m, BLOCK_N=t.block_n, BLOCK_K=t.block_k,
                 BIT_WIDEN=bit_widen, DOT_PREC="ieee" if element == "fp32" else "tf32")
divisible = [i for i, name in enumerate(signature) if name not in ("M", "SPLIT_K")]
source = ASTSource(_w8a16_kernel, {**signature, **dict.fromkeys(constants, "constexpr")}, constexprs=constants,
                   attrs={(i,): [["tt.divisibility", 16]] for i in divisible})
stages = pipeline_stages(t, block_m, t.block_k, 4 if element == "fp32" else 2, int(sys.argv[4]))
compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32),
                          options=dict(num_warps=t.num_warps, num_stages=stages))
ptx = compiled.asm["ptx"]
# Triton's conversion goes e4m3 -> f16 -> bf16; the bit-level one ends in a bf16x2 fma.
print(compiled.metadata.shared, int("cvt.bf16.f16" in ptx), int("fma.rn.bf16x2" in ptx))
"""
H200_SHARED_MEMORY = 232448  # bytes per block, as the H200 reported it


@pytest.mark.parametrize("element, block_m, bit_widen", [("bf16", 16, True), ("bf16", 128, True),
                                                         ("bf16", 16, False), ("fp32", 128, False)])
def test_compiles_for_sm90_within_shared_memory(element, block_m, bit_widen):
    """Without a GPU: ptxas accepts the bit-level widening (the interpreter never runs it) and
    it replaces Triton's conversion, and the stages chosen for the H200 fit its shared memory
    (fp32 at 128 rows needs fewer than the default's)."""
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    run = subprocess.run([sys.executable, "-c", _COMPILE_SM90, element, str(block_m), str(int(bit_widen)),
                          str(H200_SHARED_MEMORY)], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    shared, converts, bit_moves = map(int, run.stdout.split()[-3:])
    assert shared <= H200_SHARED_MEMORY
    assert bit_moves == bit_widen and not (bit_widen and converts)
