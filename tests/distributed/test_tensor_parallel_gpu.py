"""On 2 GPUs (NCCL, Triton kernels, CUDA graphs captured on every rank): TP=2 gives the greedy
tokens of TP=1 in fp32. Skipped without 2 GPUs; benchmarks/tp_gpu.sh runs it."""
import pytest
import torch

from tests.distributed.conftest import greedy

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")]


@pytest.mark.parametrize("family", ["llama", "qwen3"])
def test_two_gpus_greedy_equal_one(checkpoints, family):
    engine = dict(device="cuda", dtype="float32", gpu_memory_utilization=0.3)
    expected = greedy(checkpoints[family], **engine)
    assert greedy(checkpoints[family], tensor_parallel_size=2, **engine) == expected
