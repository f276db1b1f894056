"""Quantized checkpoints split over tensor-parallel ranks like dense ones: each rank loads its
slice of the packed codes, zero points and scales (column-parallel rows, row-parallel input
features), and greedy tokens equal those of one rank. A split that would cut a quantization
group, or act-order groups in a row-parallel layer, is a clear error."""
import pytest

from tests.distributed.conftest import greedy
from tests.quantization.checkpoints import write_quantized

# (family, format, packer settings, tensor_parallel_size)
CASES = {
    "gptq-int4-qwen2": ("qwen2", "gptq", dict(bits=4, group_size=16), 2),
    "gptq-int8-whole-input-group-llama": ("llama", "gptq", dict(bits=8, group_size=-1), 2),
    "gptq-int4-replicated-kv-llama": ("llama", "gptq", dict(bits=4, group_size=16), 4),
    "gptq-int4-act-order-whole-input-qwen3": ("qwen3", "gptq", dict(bits=4, group_size=-1, desc_act=True), 2),
    "awq-qwen3": ("qwen3", "awq", dict(group_size=32), 2),
    "fp8-llama": ("llama", "fp8", {}, 2),
    "fp8-block16-qwen3": ("qwen3", "fp8_block", dict(block=(16, 16)), 2),
}


@pytest.mark.parametrize("case", list(CASES))
def test_quantized_greedy_equals_single_rank(checkpoints, tmp_path, case):
    family, fmt, settings, tp = CASES[case]
    quantized, _ = write_quantized(checkpoints[family], str(tmp_path), fmt, **settings)
    assert greedy(quantized, tensor_parallel_size=tp) == greedy(quantized)


@pytest.mark.parametrize("settings,message", [
    # o_proj's 64 input features split at 32, inside a group of 64.
    (dict(bits=4, group_size=64), "keeps the blocks whole"),
    (dict(bits=4, group_size=16, desc_act=True), "act-order"),
])
def test_splits_that_cut_quantization_groups_are_refused(checkpoints, tmp_path, settings, message):
    quantized, _ = write_quantized(checkpoints["qwen2"], str(tmp_path), "gptq", **settings)
    with pytest.raises(Exception, match=message):
        greedy(quantized, tensor_parallel_size=2)
