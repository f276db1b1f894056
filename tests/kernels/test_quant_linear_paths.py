"""The quantized linear methods as the GPU runs them (here through Triton's interpreter): a
layer loaded from each checkpoint format gives x @ W^T of its dequantized weight on every GEMM
path of ember/quantization/gemm_paths.py; FP8's W8A8 output is the product of the
dequantized weight with the activations rounded to e4m3 as the quantizer rounds them."""
import pytest
import torch

from ember.quantization.awq import AWQLinearMethod
from ember.quantization.fp8 import FP8Config, FP8W8A8LinearMethod
from ember.kernels.quant_fp8_act import quantize_fp8
from ember.quantization.gemm_paths import path_for, reads_marlin_layout
from ember.quantization.gptq import GPTQConfig, GPTQLinearMethod
from tests.quantization import packers

K, N = 256, 160


def _rows_per_path(table) -> dict[str, int]:
    """One M for each path of the table: each bound itself, one past the last bound."""
    rows, previous = {}, 0
    for bound, path in table:
        rows.setdefault(path, bound if bound is not None else previous + 1)
        previous = bound or previous
    return rows


def _load(method, tensors: dict, device):
    return packers.load_linear(method, tensors, K, N, device)


INT_CASES = {
    "gptq-int4-g128": (GPTQLinearMethod(GPTQConfig(4, 128, 1), triton=True),
                       lambda w: packers.gptq(w, bits=4, group_size=128)),
    "gptq-int4-g32-act-order": (GPTQLinearMethod(GPTQConfig(4, 32, 1), triton=True),
                                lambda w: packers.gptq(w, bits=4, group_size=32, desc_act=True)),
    "gptq-int8-per-channel-act-order": (GPTQLinearMethod(GPTQConfig(8, -1, 1), triton=True),
                                        lambda w: packers.gptq(w, bits=8, group_size=-1, desc_act=True, sym=False)),
    "awq-g64": (AWQLinearMethod(64, triton=True), lambda w: packers.awq(w, group_size=64)),
    # Groups of no multiple of 16: int4 on the strips layout, which takes them.
    "gptq-int4-g40": (GPTQLinearMethod(GPTQConfig(4, 40, 1), triton=True),
                      lambda w: packers.gptq(w, bits=4, group_size=40)),
}


@pytest.mark.parametrize("case", list(INT_CASES))
def test_int_linear_every_path(device, case):
    method, pack = INT_CASES[case]
    tensors, dense = pack(torch.randn(N, K) * 0.05)
    layer = _load(method, tensors, device)
    # Repacked at load for the table's kernels: the Marlin layout [N, K/8] or strips (3-D).
    assert layer.qweight.dim() == (2 if reads_marlin_layout(method.paths) else 3)
    for path, m in _rows_per_path(method.paths).items():
        assert path_for(method.paths, m) == path
        x = torch.randn(m, K, device=device)
        torch.testing.assert_close(layer(x), x @ dense.T.to(device), rtol=1e-4, atol=1e-4, msg=f"path {path}, M = {m}")


@pytest.mark.parametrize("block", [None, (128, 128), (48, 32)], ids=["per-tensor", "block128", "block48x32"])
def test_fp8_w8a8_linear(device, block):
    """Every W8A8 path of the layer's table gives the dequantized weight's product with the
    activations rounded per token (per 1 x block_k group) to e4m3; that rounding alone moves
    the product by about 3%, a wrong scale by far more. cuBLAS writes bf16: within 1%. The
    weight-only paths of decode rows (the one-row GEMV, the W8A16 kernel) and the dequantized
    weight multiply the activations as they are."""
    weight = torch.randn(N, K) * 0.05
    tensors, dense = packers.fp8_per_tensor(weight) if block is None else packers.fp8_block(weight, block)
    method = FP8W8A8LinearMethod(FP8Config(block, static_activations=False), triton=True)
    layer = _load(method, tensors, device)
    for path, m in _rows_per_path(method.paths).items():
        x = torch.randn(m, K, device=device)
        # The quantizer the layer runs (tests/kernels/test_quant_fp8_w8a8.py pins it to torch's).
        q, scale = quantize_fp8(x, None if block is None else block[1])
        rounded = q.float() * scale.repeat_interleave(K // scale.shape[1], 1)
        want = (x if path in ("dequant", "w8a16-triton", "w8a16-gemv") else rounded) @ dense.T.to(device)
        error = (layer(x).float() - want).norm() / want.norm()
        assert error < 1e-2, f"path {path}, M = {m}: relative error {error:.4f}"
