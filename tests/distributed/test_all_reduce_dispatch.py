"""Which all-reduce a tensor-parallel rank runs: the one-shot path through symmetric memory only
for messages it can take, on GPUs where it was set up; the process group's own (gloo here)
everywhere else, and it still sums."""
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ember.distributed import symm_mem_all_reduce
from ember.distributed.communication import all_reduce
from ember.distributed.parallel_state import destroy_tensor_parallel, init_tensor_parallel, one_shot_all_reduce
from ember.distributed.symm_mem_all_reduce import (ONE_SHOT_MAX_BYTES, SymmMemAllReduce, fits_one_shot,
                                                   unavailable_reason)

HIDDEN = 3584  # the 7B shape: a batch-1 decode message is 7 KB in bf16


def test_decode_sized_messages_fit_the_one_shot_buffer():
    assert fits_one_shot(torch.empty(1, HIDDEN, dtype=torch.bfloat16), ONE_SHOT_MAX_BYTES)
    assert fits_one_shot(torch.empty(256, HIDDEN, dtype=torch.bfloat16), ONE_SHOT_MAX_BYTES)
    assert fits_one_shot(torch.empty(16, 64, dtype=torch.float32), ONE_SHOT_MAX_BYTES)


@pytest.mark.parametrize("x", [
    torch.empty(512, HIDDEN, dtype=torch.bfloat16),       # a prefill chunk: over the buffer
    torch.empty(HIDDEN, 2, dtype=torch.bfloat16).t(),     # not contiguous
    torch.empty(1, 7, dtype=torch.bfloat16),              # not whole 16-byte vectors
    torch.empty(1, HIDDEN, dtype=torch.int64),            # not a dtype the kernel sums
    torch.empty(1, HIDDEN, dtype=torch.float16),          # nor this one
    torch.empty(0, HIDDEN, dtype=torch.bfloat16),         # nothing to send
], ids=["too-large", "strided", "unaligned", "int64", "float16", "empty"])
def test_other_messages_go_to_the_process_group(x):
    assert not fits_one_shot(x, ONE_SHOT_MAX_BYTES)


def test_unavailable_on_the_cpu_and_when_switched_off(monkeypatch):
    assert "cpu" in unavailable_reason(torch.device("cpu"))
    for switch in symm_mem_all_reduce.SWITCHES:
        monkeypatch.setenv(switch, "0")
        assert "switched off" in unavailable_reason(torch.device("cuda", 0))
        monkeypatch.delenv(switch)


def test_a_process_meets_its_peers_through_symmetric_memory_once(monkeypatch):
    """Torch counts rendezvous exchanges per process: after one, a later group of the same
    process (a second tensor-parallel engine) takes the process group's all-reduce."""
    monkeypatch.setattr(symm_mem_all_reduce, "_rendezvous_entered", True)
    assert "rendezvous already" in unavailable_reason(torch.device("cuda", 0))


def _sum_on_gloo(rank: int, init_method: str, results) -> None:
    init_tensor_parallel(rank, 2, init_method, "gloo")
    try:
        x = torch.full((4, 64), float(rank + 1))
        summed = all_reduce(x)
        # Asked for anyway, the set-up's collectives run on every rank and agree on none.
        asked = SymmMemAllReduce.create(dist.group.WORLD, torch.device("cpu"))
        results.put((rank, one_shot_all_reduce(), asked, summed is x, summed.tolist()))
    finally:
        destroy_tensor_parallel()


def test_cpu_ranks_sum_through_gloo_in_place(tmp_path):
    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    mp.spawn(_sum_on_gloo, args=("file://" + str(tmp_path / "rendezvous"), results), nprocs=2)
    for _ in range(2):
        rank, one_shot, asked, in_place, summed = results.get()
        assert one_shot is None and asked is None  # no one-shot path on the CPU
        assert in_place
        assert summed == [[3.0] * 64] * 4
