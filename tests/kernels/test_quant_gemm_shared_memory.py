"""The int GEMM kernel's decode tiles fit an H200's shared memory (227 KiB a block) in every
dtype, checked without a GPU: Triton compiles the kernel for sm_90 and reports the shared
memory it asks for. The largest case is the per-feature scale path (groups smaller than the K
tile) in fp32, arguments specialized as on the GPU (pointers and sizes divisible by 16, so
Triton pipelines the loads through shared memory). BLOCK_K 256 at 3 stages asked 312 KiB
there; BLOCK_N 128 with it, in bf16, failed on the H200 asking 289 KiB."""
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
from ember.kernels.quant_int_gemm import DECODE_TILES as tiles, _int_gemm_kernel

element, bits, group_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
signature = {"x_ptr": f"*{element}", "qw_ptr": "*i32", "s_ptr": f"*{element}", "z_ptr": f"*{element}",
             "out_ptr": "*fp32", "M": "i32", "N": "i32", "K": "i32", "K_SPLIT": "i32", "stride_xm": "i32",
             "stride_sg": "i32", "stride_om": "i32", "stride_os": "i32"}
constants = dict(BITS=bits, GROUP_SIZE=group_size, STRIP=128, TILE_SCALE=group_size % tiles.block_k == 0,
                 BLOCK_M=tiles.block_m, BLOCK_N=tiles.block_n, BLOCK_K=tiles.block_k,
                 DOT_PREC="ieee" if element == "fp32" else "tf32")
divisible = [i for i, name in enumerate(signature) if name != "M"]
source = ASTSource(_int_gemm_kernel, {**signature, **dict.fromkeys(constants, "constexpr")}, constexprs=constants,
                   attrs={(i,): [["tt.divisibility", 16]] for i in divisible})
kernel = triton.compile(source, target=GPUTarget("cuda", 90, 32),
                        options=dict(num_warps=tiles.num_warps, num_stages=tiles.num_stages))
print(kernel.metadata.shared)
"""


def _shared_memory_on_sm90(element: str, bits: int, group_size: int) -> int:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    run = subprocess.run([sys.executable, "-c", _COMPILE, element, str(bits), str(group_size)], cwd=root, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]  # Triton compiles for sm_90 without a GPU
    return int(run.stdout.split()[-1])


@pytest.mark.parametrize("bits", [4, 8])
def test_decode_tiles_fit_h200_shared_memory(bits):
    pytest.importorskip("triton")
    assert _shared_memory_on_sm90("fp32", bits, group_size=32) <= H200_SHARED_MEMORY
