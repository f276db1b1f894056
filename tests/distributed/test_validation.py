"""Every parallel setting that cannot work is refused up front, with a message that says why."""
from types import SimpleNamespace

import pytest

from ember import LLM
from ember.distributed.validation import check_model_split, choose_backend


@pytest.mark.parametrize("kwargs,message", [
    ({"tensor_parallel_size": 3}, "must divide the model's number of attention heads (4)"),
    ({"tensor_parallel_size": 0}, "tensor_parallel_size must be an integer >= 1"),
    ({"pipeline_parallel_size": 2}, "pipeline_parallel_size=2 is not supported"),
    ({"tensor_parallel_size": 2, "distributed_executor_backend": "threads"}, "must be one of mp, ray"),
])
def test_bad_parallel_settings_are_refused(checkpoints, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        LLM(checkpoints["llama"], **kwargs)


def _shape(heads, kv_heads, intermediate=128):
    return SimpleNamespace(num_attention_heads=heads, num_key_value_heads=kv_heads,
                           intermediate_size=intermediate)


def test_kv_heads_must_split_or_replicate_evenly():
    check_model_split(_shape(8, 2), 8)  # each of 2 kv heads on 4 ranks
    check_model_split(_shape(8, 8), 4)  # 2 kv heads per rank
    with pytest.raises(ValueError, match="3 key/value heads must divide one another"):
        check_model_split(_shape(6, 3), 2)
    with pytest.raises(ValueError, match="must divide the model's intermediate_size"):
        check_model_split(_shape(8, 8, intermediate=100), 8)


def test_one_gpu_cannot_hold_several_ranks():
    with pytest.raises(ValueError, match="names one GPU"):
        choose_backend(2, None, "cuda:1", _shape(4, 4))


def test_one_rank_runs_in_this_process_whatever_the_backend():
    assert choose_backend(1, "ray", "cpu", _shape(4, 4)) is None
    assert choose_backend(2, None, "cpu", _shape(4, 4)) == "mp"
