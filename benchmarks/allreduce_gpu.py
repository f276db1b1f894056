"""All-reduce on 2 GPUs of one host: NCCL against the one-shot path through symmetric memory
(ember/distributed/symm_mem_all_reduce.py), and PyTorch's two-shot for reference, in bf16
from 7 KB (batch 1 of the 7B shape) to 4 MB, called eagerly and replayed from a CUDA graph
(as the decode graphs do), with a check that they give the same sums. Two processes of its
own (no torchrun): `python benchmarks/allreduce_gpu.py [--out F.json]`. Prints one row per
size; where one-shot stops winning is where ONE_SHOT_MAX_BYTES belongs. NVLink multicast
stays off."""
from __future__ import annotations

import argparse
import json
import os
import tempfile

for _name, _value in (("NCCL_NVLS_ENABLE", "0"), ("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1"),
                      ("NVSHMEM_DISABLE_NVLS", "1")):
    os.environ.setdefault(_name, _value)

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

from ember.distributed.parallel_state import destroy_tensor_parallel, init_tensor_parallel  # noqa: E402
from ember.distributed.symm_mem_all_reduce import ONE_SHOT_MAX_BYTES, SymmMemAllReduce  # noqa: E402

HIDDEN = 3584
LARGEST = 4 * 1024 * 1024
# Decode messages of 1 .. 512 rows of the 7B shape (7 KB .. 3.5 MB), then 4 MB.
SIZES = [rows * HIDDEN for rows in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)] + [LARGEST // 2]
EAGER_CALLS = 200
GRAPH_CALLS, GRAPH_REPLAYS = 50, 10


def nccl(x: torch.Tensor) -> torch.Tensor:
    dist.all_reduce(x)
    return x


def two_shot(one_shot: SymmMemAllReduce):
    """PyTorch's two-shot all-reduce through the same buffer (reduce-scatter, then all-gather,
    both over peer memory): timed beside the others, for where one-shot's reads stop paying."""
    def reduce(x: torch.Tensor) -> torch.Tensor:
        staging = one_shot.buffer[:x.numel() * x.element_size()].view(x.dtype).view(x.shape)
        staging.copy_(x)
        return torch.ops.symm_mem.two_shot_all_reduce_out(staging, "sum", one_shot.group_name, torch.empty_like(x))
    return reduce


def eager_us(op, x: torch.Tensor) -> float:
    for _ in range(10):
        op(x)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(EAGER_CALLS):
        op(x)
    end.record()
    end.synchronize()
    return start.elapsed_time(end) * 1000 / EAGER_CALLS


def graph_us(op, x: torch.Tensor) -> float:
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(GRAPH_CALLS):
            op(x)
    try:
        graph.replay()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(GRAPH_REPLAYS):
            graph.replay()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) * 1000 / (GRAPH_CALLS * GRAPH_REPLAYS)
    finally:
        graph.reset()  # before the process group goes (NCCL waits for graphs holding its collectives)


def _rank(rank: int, init_method: str, results) -> None:
    torch.cuda.set_device(rank)
    init_tensor_parallel(rank, 2, init_method, "nccl")
    # A buffer for the largest size timed here, beyond what the engine's path takes.
    one_shot = SymmMemAllReduce.create(dist.group.WORLD, torch.device("cuda", rank), max_bytes=LARGEST)
    try:
        rows = []
        generator = torch.Generator(device="cuda").manual_seed(rank)
        for numel in SIZES:
            x = torch.randn(numel, generator=generator, device="cuda").to(torch.bfloat16)
            row = {"bytes": numel * 2, "rows": numel / HIDDEN}
            # Zeros while timing: repeated in-place sums stay finite.
            zeros = torch.zeros_like(x)
            row["nccl_eager_us"] = eager_us(nccl, zeros)
            row["nccl_graph_us"] = graph_us(nccl, zeros)
            if one_shot is not None:
                expected = nccl(x.clone())
                row["equal"] = torch.equal(one_shot(x), expected)
                row["one_shot_eager_us"] = eager_us(one_shot, zeros)
                row["one_shot_graph_us"] = graph_us(one_shot, zeros)
                try:  # a reference only: a size it refuses (on every rank alike) leaves it out
                    row["two_shot_equal"] = torch.equal(two_shot(one_shot)(x), expected)
                    row["two_shot_graph_us"] = graph_us(two_shot(one_shot), zeros)
                except RuntimeError as e:
                    row["two_shot_error"] = str(e)[:200]
            rows.append(row)
        results.put((rank, one_shot is not None, rows))
    finally:
        if one_shot is not None:
            one_shot.close()
        destroy_tensor_parallel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args()
    if torch.cuda.device_count() < 2:
        raise SystemExit("needs 2 CUDA GPUs")
    print(f"torch {torch.__version__}, NCCL {torch.cuda.nccl.version()}, {torch.cuda.get_device_name(0)} x2, "
          f"peer access {torch.cuda.can_device_access_peer(0, 1)}; the engine's one-shot limit: "
          f"{ONE_SHOT_MAX_BYTES // 1024} KiB")
    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_rank, args=("file://" + os.path.join(tmp, "rendezvous"), results), nprocs=2)
    by_rank = dict((rank, (available, rows)) for rank, available, rows in (results.get() for _ in range(2)))
    report(by_rank)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({rank: rows for rank, (_, rows) in by_rank.items()}, f, indent=1)


def report(by_rank: dict) -> None:
    available, rows = by_rank[0]
    if not available:
        print("one-shot path unavailable: NCCL alone (the log above says why)")
    nan = float("nan")
    print(f"{'bytes':>9} {'rows':>5} | {'NCCL eager':>10} {'one-shot':>9} | {'NCCL graph':>10} {'one-shot':>9} "
          f"{'speed-up':>8} {'two-shot':>9} | equal one-shot (rank 0, 1), two-shot")
    for i, row in enumerate(rows):
        one_shot = row.get("one_shot_graph_us")
        print(f"{row['bytes']:>9} {row['rows']:>5.0f} | {row['nccl_eager_us']:>8.1f}us "
              f"{row.get('one_shot_eager_us', nan):>7.1f}us | {row['nccl_graph_us']:>8.1f}us "
              f"{one_shot or nan:>7.1f}us {row['nccl_graph_us'] / one_shot if one_shot else nan:>7.2f}x "
              f"{row.get('two_shot_graph_us', nan):>7.1f}us | {row.get('equal')}, {by_rank[1][1][i].get('equal')}, "
              f"{row.get('two_shot_equal', row.get('two_shot_error'))}")


if __name__ == "__main__":
    main()
