"""On 2 GPUs: the one-shot all-reduce is set up at group set-up, and its sums equal NCCL's, called
eagerly and replayed from a CUDA graph; messages over its buffer go to NCCL; the driver's sampled
token ids reach the other rank exactly through it. Skipped without
2 GPUs; benchmarks/tp_gpu.sh runs them. NVLink multicast stays off (the device README)."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ember.distributed.communication import all_reduce, broadcast_token_ids
from ember.distributed.parallel_state import destroy_tensor_parallel, init_tensor_parallel, one_shot_all_reduce
from ember.distributed.symm_mem_all_reduce import ONE_SHOT_MAX_BYTES, unavailable_reason

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")]

HIDDEN = 3584
# Decode messages of batch 1, 8 and 256 in bf16, and the tiny test models' fp32 rows.
SHAPES = [((1, HIDDEN), torch.bfloat16), ((8, HIDDEN), torch.bfloat16), ((256, HIDDEN), torch.bfloat16),
          ((3, 64), torch.float32), ((8, HIDDEN), torch.float16)]


def _compare(rank: int, init_method: str, results) -> None:
    torch.cuda.set_device(rank)
    init_tensor_parallel(rank, 2, init_method, "nccl")
    graph = torch.cuda.CUDAGraph()
    try:
        report = {"one_shot": one_shot_all_reduce() is not None, "eager": [], "graph": [],
                  "unavailable": unavailable_reason(torch.device("cuda", rank))}
        generator = torch.Generator(device="cuda").manual_seed(rank)
        for shape, dtype in SHAPES:
            x = torch.randn(shape, generator=generator, device="cuda").to(dtype)
            nccl = x.clone()
            dist.all_reduce(nccl)
            summed = all_reduce(x.clone())
            report["eager"].append((str(dtype), shape, torch.equal(summed, nccl)))
        # Inside a CUDA graph, as in the decode graphs: new inputs copied in, then replayed.
        static = torch.zeros(8, HIDDEN, dtype=torch.bfloat16, device="cuda")
        for _ in range(2):
            all_reduce(static.clone())
        with torch.cuda.graph(graph):
            captured = all_reduce(static.clone())
        for _ in range(3):
            x = torch.randn(static.shape, generator=generator, device="cuda").to(static.dtype)
            nccl = x.clone()
            dist.all_reduce(nccl)
            static.copy_(x)
            graph.replay()
            torch.cuda.synchronize()
            report["graph"].append(torch.equal(captured, nccl))
        # The driver's sampled tokens (the largest Qwen id among them) reach every rank exactly.
        report["tokens"] = []
        for n in (1, 5, 128):
            sent = torch.arange(151935, 151935 - 997 * n, -997, device="cuda")
            ids = sent.clone() if rank == 0 else torch.zeros_like(sent)
            report["tokens"].append((n, torch.equal(broadcast_token_ids(ids, 151936), sent)))
        large = torch.ones(ONE_SHOT_MAX_BYTES // 2 + HIDDEN, dtype=torch.bfloat16, device="cuda")
        report["large_to_nccl"] = all_reduce(large) is large and bool((large == 2).all())
        results.put((rank, report))
    finally:
        graph.reset()
        destroy_tensor_parallel()


@pytest.mark.timeout(180, method="thread")
def test_one_shot_all_reduce_equals_nccl_eager_and_in_a_cuda_graph(tmp_path):
    for name in ("NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS"):
        os.environ.setdefault(name, "0" if name == "NCCL_NVLS_ENABLE" else "1")
    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    mp.spawn(_compare, args=("file://" + str(tmp_path / "rendezvous"), results), nprocs=2)
    for _ in range(2):
        rank, report = results.get()
        print(f"rank {rank}: {report}")
        assert report["one_shot"], f"the one-shot path was not set up: {report['unavailable'] or 'its check failed'}"
        assert all(equal for *_, equal in report["eager"]), report["eager"]
        assert all(report["graph"]), report["graph"]
        assert report["large_to_nccl"]
        assert all(equal for _, equal in report["tokens"]), report["tokens"]
