"""The Ray backend on a local Ray instance runs the same workers and gives the same tokens."""
import pytest

from tests.distributed.conftest import greedy

ray = pytest.importorskip("ray")


def test_ray_backend_greedy_equals_single_rank(checkpoints):
    assert not ray.is_initialized()
    got = greedy(checkpoints["llama"], tensor_parallel_size=2, distributed_executor_backend="ray")
    assert got == greedy(checkpoints["llama"])
    # The engine started the local instance, so it stopped it (and every actor) on shutdown.
    assert not ray.is_initialized()
