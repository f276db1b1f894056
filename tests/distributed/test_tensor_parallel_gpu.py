"""On 2 GPUs (NCCL, Triton kernels, CUDA graphs captured on every rank): TP=2 gives the greedy
tokens of TP=1 in fp32. Skipped without 2 GPUs; benchmarks/tp_gpu.sh runs it. The checkpoints
carry no tokenizer (prompts are token ids), so the GPU machine needs no tokenizer package."""
import pytest
import torch

from tests.distributed.conftest import greedy
from tests.tiny_models import build_tiny_checkpoint

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")]


@pytest.mark.parametrize("family", ["llama", "qwen3"])
def test_two_gpus_greedy_equal_one(tmp_path, family):
    checkpoint = build_tiny_checkpoint(str(tmp_path), family, with_tokenizer=False, vocab_size=49152)
    engine = dict(device="cuda", dtype="float32", gpu_memory_utilization=0.3, skip_tokenizer_init=True)
    expected = greedy(checkpoint, **engine)
    assert greedy(checkpoint, tensor_parallel_size=2, **engine) == expected
