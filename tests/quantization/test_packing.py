"""The test packers and Ember's unpacking agree with small hand-computed words, so both are
checked against the formats' specifications and not only against each other."""
import torch

from ember.kernels.quant_packing import AWQ_ORDER, pack_int32, unpack_int32
from ember.quantization.gptq import GPTQConfig
from ember.models.layers.linear import Linear
from tests.quantization import packers


def _signed(word: int) -> int:
    return word - 2 ** 32 if word >= 2 ** 31 else word


def test_gptq_4bit_word_packs_input_rows_lowest_bits_first():
    codes = torch.tensor([[1], [2], [3], [4], [5], [6], [7], [8]])  # [K=8, N=1]
    word = packers.pack_words(codes.T, 4).T
    assert word.tolist() == [[_signed(0x87654321)]]
    assert torch.equal(unpack_int32(word, 4, dim=0), codes)
    assert torch.equal(pack_int32(codes, 4, dim=0), word)


def test_gptq_8bit_word():
    codes = torch.tensor([[1, 2, 3, 255]])
    assert packers.pack_words(codes, 8).tolist() == [[_signed(0xFF030201)]]
    assert unpack_int32(torch.tensor([[_signed(0xFF030201)]]), 8, dim=1).tolist() == [[1, 2, 3, 255]]


def test_awq_word_interleaves_columns():
    codes = torch.arange(8)[None, :]  # one input row, columns 0..7
    # Field i holds column AWQ_ORDER[i] = 0, 2, 4, 6, 1, 3, 5, 7 (fields read from the lowest bits).
    word = packers.pack_words(codes, 4, packers.AWQ_ORDER)
    assert word.tolist() == [[0x75316420]]
    assert torch.equal(unpack_int32(word, 4, dim=1, order=AWQ_ORDER), codes)


def test_gptq_v1_zero_points_are_stored_minus_one():
    """A symmetric 4-bit checkpoint's zero point is 8, stored as 7 in every field."""
    weight = torch.linspace(-1, 1, 16 * 8).reshape(16, 8)
    tensors, dense = packers.gptq(weight, bits=4, group_size=-1, sym=True)
    assert tensors["qzeros"].tolist() == [[0x77777777, 0x77777777]]
    layer = Linear(8, 16)
    del layer.weight
    method = GPTQConfig.from_dict({"bits": 4, "group_size": -1}).linear_method()
    method.create_weights(layer, torch.float32, "cpu")
    for name, tensor in tensors.items():
        getattr(layer, name).weight_loader(getattr(layer, name), tensor.to(getattr(layer, name).dtype))
    method.process_weights_after_loading(layer)
    assert torch.equal(layer.zeros, torch.full((1, 16), 8.0))
    torch.testing.assert_close(method.apply(layer, torch.eye(8)), dense.T, rtol=0, atol=1e-6)


def test_fp8_block_scales_by_hand():
    weight = torch.tensor([[1.0, -2.0, 0.5, 0.25], [0.5, 0.5, 4.0, 0.0], [8.0, 0.0, 0.0, 1.0]])
    tensors, dense = packers.fp8_block(weight, block=(2, 2))
    torch.testing.assert_close(tensors["weight_scale_inv"], torch.tensor([[2.0, 4.0], [8.0, 1.0]]) / 448)
    assert tensors["weight"].float()[2, 0] == 448.0  # the block's largest value maps to e4m3's max
    torch.testing.assert_close(dense, weight)  # these values are exact in e4m3
