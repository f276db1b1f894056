"""The int GEMM kernels' tiles fit an H200's shared memory (227 KiB a block) in every dtype,
checked without a GPU: Triton compiles each kernel for sm_90 and reports the shared memory it
asks for. The largest case is the per-feature scale path (groups smaller than the K tile) in
fp32, with the largest tiles each kernel runs, arguments specialized as on the GPU (pointers
and sizes divisible by 16, so Triton pipelines the loads through shared memory). A removed
fused kernel with BLOCK_K 256 at 3 stages asked 312 KiB there; BLOCK_N 128 with it, in bf16,
failed on the H200 asking 289 KiB."""
import os
import subprocess
import sys

import pytest

H200_SHARED_MEMORY = 232448  # bytes per block, as the H200 reported it

# Run apart from the kernel tests, whose conftest switched Triton to its interpreter.
_COMPILE = """
import sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

kernel_name, element, bits, group_size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if kernel_name == "tiled":
    from ember.kernels.quant_int_tiled_gemm import fit_to_group, tiled_tiles, _int_tiled_kernel as kernel
    t, _ = fit_to_group(tiled_tiles(4096), group_size, 1 << 20)
    tiles = dict(BLOCK_M=t.block_m, BLOCK_N=t.block_n, BLOCK_K=t.block_k, DOT_PREC="ieee")
    warps, stages = t.num_warps, t.num_stages
else:
    from ember.kernels.quant_int_gemv import _BLOCK_N, _WORDS, _int_gemv_kernel as kernel
    tiles = dict(BLOCK_N=_BLOCK_N, WORDS=_WORDS, USE_PDL=True)  # the H200's variant
    warps, stages = 4, 3
block_k = tiles.get("BLOCK_K") or tiles["WORDS"] * (32 // bits)
signature = {"x_ptr": f"*{element}", "qw_ptr": "*i32", "s_ptr": f"*{element}", "z_ptr": f"*{element}",
             "out_ptr": "*fp32", "M": "i32", "N": "i32", "K": "i32", "K_SPLIT": "i32", "stride_xm": "i32",
             "stride_sg": "i32", "stride_om": "i32", "stride_os": "i32"}
if kernel_name == "gemv":  # one row per program: no M
    del signature["M"]
constants = dict(BITS=bits, GROUP_SIZE=group_size, STRIP=128, TILE_SCALE=group_size % block_k == 0, **tiles)
divisible = [i for i, name in enumerate(signature) if name != "M"]
source = ASTSource(kernel, {**signature, **dict.fromkeys(constants, "constexpr")}, constexprs=constants,
                   attrs={(i,): [["tt.divisibility", 16]] for i in divisible})
compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options=dict(num_warps=warps, num_stages=stages))
print(compiled.metadata.shared)
"""


def _shared_memory_on_sm90(kernel: str, element: str, bits: int, group_size: int) -> int:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    run = subprocess.run([sys.executable, "-c", _COMPILE, kernel, element, str(bits), str(group_size)], cwd=root,
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]  # Triton compiles for sm_90 without a GPU
    return int(run.stdout.split()[-1])


# Groups of 32: the GEMV kernel's per-feature scale path; 40: the tiled kernel's (its K tile
# shrinks into groups of 32).
@pytest.mark.parametrize("kernel, group_size", [("gemv", 32), ("tiled", 32), ("tiled", 40)])
@pytest.mark.parametrize("bits", [4, 8])
def test_tiles_fit_h200_shared_memory(kernel, group_size, bits):
    pytest.importorskip("triton")
    assert _shared_memory_on_sm90(kernel, "fp32", bits, group_size) <= H200_SHARED_MEMORY
