"""The bf16 CPU path for GGUF checkpoints: 4-bit blocks go to torch's int4 CPU kernel with
GGUF's scale/min mapped onto its scale/zero, every other format to a bf16 matrix; each is
checked against the model dequantized to fp32 (its own reference)."""
import os

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q
from gguf.quants import quantize

from ember.models.gguf_loading import gguf_config_dict
from ember.models.hf_config import load_hf_config
from ember.models.loader import load_model
from ember.quantization.gguf_blocks import BLOCK, dequantize, four_bit_codes
from ember.quantization.gguf_cpu import (DENSE_FROM_ROWS, GGUFCPULinearMethod, SmallBatchInt8Head,
                                         cpu_int4_available)
from tests.models.gguf_files import ARCHES, write_gguf

needs_int4 = pytest.mark.skipif(not cpu_int4_available(), reason="this torch has no CPU int4 kernel")


def _blocks(qtype: Q, rows: int = 64, cols: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    weight = np.random.default_rng(0).normal(0, 0.1, (rows, cols)).astype(np.float32)
    raw = torch.from_numpy(quantize(weight, qtype))
    return raw, dequantize(raw, qtype.value, (rows, cols))


@needs_int4
@pytest.mark.parametrize("qtype", [Q.Q4_0, Q.Q4_1], ids=lambda q: q.name)
def test_gguf_scale_and_min_map_exactly_onto_the_int4_kernel(qtype):
    """In fp32 (scales unrounded) the kernel reproduces the dequantized matrix bit for bit."""
    raw, weight = _blocks(qtype)
    codes, scale, offset = four_bit_codes(raw, qtype.value)
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 8)
    scale_and_zero = torch.stack([scale, offset + 8 * scale], -1).transpose(0, 1).contiguous()
    x = torch.randn(5, weight.shape[1])
    out = torch.ops.aten._weight_int4pack_mm_for_cpu(x, packed, BLOCK, scale_and_zero)
    torch.testing.assert_close(out, x @ weight.t(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("rows", [3, DENSE_FROM_ROWS], ids=["few rows", "dense from"])
@pytest.mark.parametrize("qtype", [Q.Q4_0, Q.Q4_1, Q.Q8_0, Q.F16], ids=lambda q: q.name)
def test_linear_method_matches_the_dequantized_product(qtype, rows):
    """Few rows take the int4 kernel (4-bit formats), many the bf16 matrix: both match."""
    raw, weight = _blocks(qtype)
    layer = torch.nn.Module()
    method = GGUFCPULinearMethod()
    method.load_part(None, qtype.value, raw, tuple(weight.shape))
    method.process_weights_after_loading(layer)
    x = torch.randn(rows, weight.shape[1]).bfloat16()
    ref = x.float() @ weight.float().t()
    torch.testing.assert_close(method.apply(layer, x).float(), ref, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("family", list(ARCHES))
def test_config_equals_transformers_reading_the_file(tmp_path, family):
    from transformers import AutoConfig

    path = write_gguf(str(tmp_path / f"{family}.gguf"), family, Q.Q8_0)
    ours = load_hf_config(path).to_dict()
    theirs = AutoConfig.from_pretrained(str(tmp_path), gguf_file=os.path.basename(path)).to_dict()
    for d in (ours, theirs):
        d.pop("_name_or_path", None)
    assert ours == theirs
    assert gguf_config_dict(path)["model_type"] == family


@needs_int4
@pytest.mark.parametrize("family", list(ARCHES))
def test_bf16_model_keeps_blocks_and_matches_its_dequantized_reference(tmp_path, family):
    path = write_gguf(str(tmp_path / f"{family}.gguf"), family, Q.Q4_1)
    config = load_hf_config(path)
    reference = load_model(path, config, torch.float32, "cpu", 64)
    kept = load_model(path, config, torch.bfloat16, "cpu", 64)
    qkv = kept.model.layers[0].self_attn.qkv_proj
    assert hasattr(qkv, "packed") and not hasattr(qkv, "weight")  # blocks kept, no fp32 weight
    ids = torch.tensor([1, 17, 300, 42, 7, 99])
    with torch.inference_mode():
        want = reference.compute_logits(reference(ids, torch.arange(6)))
        got = kept.compute_logits(kept(ids, torch.arange(6)))
    assert (got - want).abs().max() < 0.05 * want.abs().max()
    assert (got.argmax(-1) == want.argmax(-1)).float().mean() >= 0.8
    # A one-sequence decode's row goes through the int8 head, held to the same reference.
    head = kept.model.embed_tokens if kept.lm_head is None else kept.lm_head
    assert isinstance(head.head_method, SmallBatchInt8Head)
    with torch.inference_mode():
        last = kept.compute_logits(kept(ids, torch.arange(6))[-1:])
    assert (last - want[-1:]).abs().max() < 0.05 * want.abs().max()


def test_int8_head_for_few_rows_stays_close_to_the_bf16_product():
    weight = _blocks(Q.Q8_0, rows=512, cols=256)[1].bfloat16()
    head = torch.nn.Module()
    head.weight = weight
    method = SmallBatchInt8Head(weight)
    few = torch.randn(SmallBatchInt8Head.MAX_ROWS, 256).bfloat16()
    exact = torch.nn.functional.linear(few.float(), weight.float())
    got = method.apply(head, few).float()
    assert (got - exact).abs().max() < 0.02 * exact.abs().max()
    assert (got.argmax(-1) == exact.argmax(-1)).all()
    many = torch.randn(SmallBatchInt8Head.MAX_ROWS + 1, 256).bfloat16()
    assert torch.equal(method.apply(head, many), torch.nn.functional.linear(many, weight))
