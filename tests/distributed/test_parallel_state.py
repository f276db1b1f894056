"""Leaving the process group: each rank leaves on its own, without waiting for the others (on
NCCL a rank that waited for an exited one would wait for ever), and what must go before the
group (CUDA graphs holding its collectives) is released first, while the group still stands."""
import time

import torch.distributed as dist
import torch.multiprocessing as mp

from ember.distributed.parallel_state import before_leaving, destroy_tensor_parallel, init_tensor_parallel, tp_size

LATE_S = 3.0


def _leave(rank: int, init_method: str, results) -> None:
    init_tensor_parallel(rank, 2, init_method, "gloo")
    released = []
    before_leaving(lambda: released.append(dist.is_initialized()))
    if rank == 1:
        time.sleep(LATE_S)  # a rank that leaves late, or never
    start = time.monotonic()
    destroy_tensor_parallel()
    results.put((rank, time.monotonic() - start, released, dist.is_initialized(), tp_size()))


def test_each_rank_leaves_on_its_own_after_releasing_what_holds_the_group(tmp_path):
    results = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_leave, args=("file://" + str(tmp_path / "rendezvous"), results), nprocs=2)
    by_rank = {rank: rest for rank, *rest in (results.get() for _ in range(2))}
    for rank, (seconds, released, initialized, size) in by_rank.items():
        assert released == [True]  # once, while the group still stood
        assert not initialized and size == 1
    assert by_rank[0][0] < LATE_S / 2  # rank 0 did not wait for rank 1
