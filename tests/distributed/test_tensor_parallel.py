"""Tensor parallelism over worker processes (gloo on the CPU, fp32) gives exactly the greedy
tokens of one rank, for every way a model splits: kv heads split or replicated, a padded
vocabulary, a tied LM head."""
import functools

import pytest

from tests.distributed.conftest import greedy


@pytest.fixture(scope="module")
def single_rank_tokens(checkpoints):
    return functools.cache(lambda family: greedy(checkpoints[family]))


@pytest.mark.parametrize("family,tp", [("llama", 2), ("llama", 4), ("qwen2", 2), ("qwen2", 4), ("qwen3", 4)])
def test_tensor_parallel_greedy_equals_single_rank(checkpoints, single_rank_tokens, family, tp):
    got = greedy(checkpoints[family], tensor_parallel_size=tp, distributed_executor_backend="mp")
    assert got == single_rank_tokens(family)


def test_dummy_weights_are_the_same_model_at_any_tp(checkpoints):
    """Random weights (benchmarks) are drawn unsharded: TP=2 runs the model TP=1 runs."""
    expected = greedy(checkpoints["qwen2"], load_format="dummy")
    assert greedy(checkpoints["qwen2"], load_format="dummy", tensor_parallel_size=2) == expected
