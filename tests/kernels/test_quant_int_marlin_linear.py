"""GPTQ and AWQ int4 layers under a table of the Marlin layout's paths (here through Triton's
interpreter): loading repacks the checkpoint's codes into that layout (act-order's rows sorted
by group, the activations' columns permuted per call), and each path gives x @ W^T of the
dequantized weight. A table cannot mix layouts, and int8 keeps the strips."""
import pytest
import torch

from ember.quantization.awq import AWQLinearMethod
from ember.quantization.gemm_paths import path_for
from ember.quantization.gptq import GPTQConfig, GPTQLinearMethod
from tests.quantization import packers

K, N = 256, 160
MARLIN_TABLE = ((16, "marlin"), (None, "marlin-dequant"))

CASES = {
    "gptq-g128": (lambda: GPTQLinearMethod(GPTQConfig(4, 128, 1), triton=True, paths=MARLIN_TABLE),
                  lambda w: packers.gptq(w, bits=4, group_size=128)),
    "gptq-g32-act-order": (lambda: GPTQLinearMethod(GPTQConfig(4, 32, 1), triton=True, paths=MARLIN_TABLE),
                           lambda w: packers.gptq(w, bits=4, group_size=32, desc_act=True)),
    "gptq-v2-g64-asym": (lambda: GPTQLinearMethod(GPTQConfig(4, 64, 0), triton=True, paths=MARLIN_TABLE),
                         lambda w: packers.gptq(w, bits=4, group_size=64, sym=False, checkpoint_format="gptq_v2")),
    "gptq-per-channel": (lambda: GPTQLinearMethod(GPTQConfig(4, -1, 1), triton=True, paths=MARLIN_TABLE),
                         lambda w: packers.gptq(w, bits=4, group_size=-1)),
    "awq-g64": (lambda: AWQLinearMethod(64, triton=True, paths=MARLIN_TABLE), lambda w: packers.awq(w, group_size=64)),
}


def _load(method, tensors: dict, device):
    return packers.load_linear(method, tensors, K, N, device)


@pytest.mark.parametrize("case", list(CASES))
def test_int4_layer_on_the_marlin_layout(device, case):
    make_method, pack = CASES[case]
    tensors, dense = pack(torch.randn(N, K) * 0.05)
    layer = _load(make_method(), tensors, device)
    assert layer.qweight.shape == (N, K // 8)  # each output column's codes along K
    assert (getattr(layer, "perm", None) is not None) == ("act-order" in case)
    for path, m in (("marlin", 1), ("marlin", 16), ("marlin-dequant", 17)):
        assert path_for(MARLIN_TABLE, m) == path
        x = torch.randn(2, m, K, device=device)  # a leading batch axis: the layer flattens it
        torch.testing.assert_close(layer(x), x @ dense.T.to(device), rtol=1e-4, atol=1e-4, msg=f"{path}, M = {m}")


def test_a_table_reads_one_layout():
    with pytest.raises(ValueError, match="mixes paths of the Marlin layout"):
        GPTQLinearMethod(GPTQConfig(4, 128, 1), triton=True, paths=((1, "gemv"), (None, "marlin")))


def test_int8_stays_on_the_strips():
    with pytest.raises(ValueError, match="take int4 weights, not int8"):
        GPTQLinearMethod(GPTQConfig(8, 128, 1), triton=True, paths=MARLIN_TABLE)
