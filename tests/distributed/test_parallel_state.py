"""Leaving the process group: each rank leaves on its own, without waiting for the others (on
NCCL a rank that waited for an exited one would wait for ever), and what must go before the
group (CUDA graphs holding its collectives) is released first, while the group still stands."""
import torch.distributed as dist
import torch.multiprocessing as mp

from ember.distributed.parallel_state import before_leaving, destroy_tensor_parallel, init_tensor_parallel, tp_size

# Only a bound for a broken implementation to fail against instead of hanging.
HANG_S = 60.0


def _leave(rank: int, init_method: str, results, rank_0_left) -> None:
    init_tensor_parallel(rank, 2, init_method, "gloo")
    released = []
    before_leaving(lambda: released.append(dist.is_initialized()))
    # Rank 1 leaves only once rank 0 has left: had rank 0 waited for rank 1, it never would.
    waited_for_rank_0 = True if rank == 0 else rank_0_left.wait(HANG_S)
    destroy_tensor_parallel()
    if rank == 0:
        rank_0_left.set()
    results.put((rank, waited_for_rank_0, released, dist.is_initialized(), tp_size()))


def test_each_rank_leaves_on_its_own_after_releasing_what_holds_the_group(tmp_path):
    context = mp.get_context("spawn")
    results, rank_0_left = context.SimpleQueue(), context.Event()
    mp.spawn(_leave, args=("file://" + str(tmp_path / "rendezvous"), results, rank_0_left), nprocs=2)
    by_rank = {rank: rest for rank, *rest in (results.get() for _ in range(2))}
    for rank, (left_in_turn, released, initialized, size) in by_rank.items():
        assert left_in_turn  # rank 1 saw rank 0 leave first, without rank 1
        assert released == [True]  # once, while the group still stood
        assert not initialized and size == 1
