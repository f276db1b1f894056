"""Where a batch-1 decode step's time goes on rank 0 (the engine process) under tensor
parallelism: torch.profiler around STEPS greedy decode steps of 64-token prompts (one by default; the 7B shape,
random weights), its GPU kernels grouped into all-reduce, other collectives, GEMMs, attention
and the rest, per decode step and as a share of the GPU's busy time; then the 20 costliest
kernels; where the GPU sat idle (gaps between kernels, and the host calls running during them:
a synchronisation there means the step waits on itself); and a cProfile pass naming the host
functions the driver spends its step in. A one-shot all-reduce kernel's time includes its wait at the barrier for the other
rank, as NCCL's does. `python benchmarks/tp_profile.py --tp 2 [--batch 64] [--out trace.json]`;
benchmarks/tp_gpu.sh runs it. `--device cpu --model DIR` runs it on the CPU (no kernels to
group: the operator table alone)."""
from __future__ import annotations

import argparse
import logging
import cProfile
import pstats
import re
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks import idle_gaps
from ember import LLM, SamplingParams
from ember.distributed.parallel_state import one_shot_all_reduce
from ember.entrypoints.bench.workloads import WORKLOADS, shape_dir

STEPS = 64
PROMPT = list(range(1000, 1064))
# Kernel name -> group, first match wins (NCCL's kernels: ncclDevKernel_AllReduce_..., and
# _SendRecv / _Broadcast for the logits' gather and the sampled tokens' broadcast).
GROUPS = [("all-reduce", re.compile(r"allreduce|all_reduce", re.I)),
          ("other collectives", re.compile(r"nccl", re.I)),
          ("GEMM", re.compile(r"gemm|nvjet|cutlass|xmma|matmul|splitk", re.I)),
          ("attention", re.compile(r"attention|attn|flash", re.I))]


def group_of(kernel: str) -> str:
    return next((name for name, pattern in GROUPS if pattern.search(kernel)), "other")


def decode(llm: LLM, steps: int, batch: int) -> float:
    """Seconds for `batch` prompts' prefill and `steps` greedy decode steps."""
    params = SamplingParams(temperature=0.0, max_tokens=steps + 1, ignore_eos=True)
    prompts = [{"prompt_token_ids": [1000 + i] + PROMPT[1:]} for i in range(batch)]
    start = time.perf_counter()
    llm.generate(prompts, params, use_tqdm=False)
    return time.perf_counter() - start


def summarize(prof, wall_s: float) -> None:
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    print(f"wall time {wall_s * 1000 / STEPS:.3f} ms per decode step under the profiler "
          f"({STEPS} steps and the prefill)")
    if not kernels:
        print("no GPU kernels recorded")
    else:
        by_group, by_name, counts = defaultdict(float), defaultdict(float), defaultdict(int)
        for e in kernels:
            us = e.time_range.elapsed_us()
            by_group[group_of(e.name)] += us
            by_name[e.name] += us
            counts[e.name] += 1
        busy = sum(by_group.values())
        print(f"GPU busy {busy / 1000 / STEPS:.3f} ms per decode step ({len(kernels)} kernels in all)")
        for name, us in sorted(by_group.items(), key=lambda kv: -kv[1]):
            print(f"  {name:<18} {us / 1000 / STEPS:7.3f} ms per step  {100 * us / busy:5.1f}% of GPU busy")
        print("costliest kernels (total us, calls, us per call):")
        for name, us in sorted(by_name.items(), key=lambda kv: -kv[1])[:20]:
            print(f"  {us:10.0f} {counts[name]:6d} {us / counts[name]:8.2f}  [{group_of(name)}] {name[:110]}")
        print("\n".join(idle_gaps.report(prof, STEPS, "decode step")))
    averages = prof.key_averages()
    if kernels:
        print(averages.table(sort_by="self_device_time_total", row_limit=15, max_name_column_width=60))
    # The host's own side: the eager prefill's operators (a decode step is one graph replay).
    print(averages.table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=60))


def host_profile(llm: LLM, batch: int) -> None:
    """Where the driver's host time goes in STEPS decode steps (cProfile: Python-level costs,
    inflated by the profiler's own overhead, so read them as shares)."""
    profiler = cProfile.Profile()
    profiler.enable()
    decode(llm, STEPS, batch)
    profiler.disable()
    stats = pstats.Stats(profiler)
    print("host functions by own time (cProfile, all decode steps):")
    stats.sort_stats("tottime").print_stats(20)
    print("host functions by cumulative time:")
    stats.sort_stats("cumulative").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tp", type=int, default=2)
    parser.add_argument("--model", default=None, help="a checkpoint directory (default: the 7B shape)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=1, help="sequences decoded together")
    parser.add_argument("--out", help="also write a Chrome trace here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    model = args.model or shape_dir(WORKLOADS["rand7b"].shape)
    llm = LLM(model, tensor_parallel_size=args.tp, load_format="dummy", skip_tokenizer_init=True,
              max_num_seqs=max(8, args.batch), device=args.device)
    try:
        one_shot = one_shot_all_reduce()
        print("all-reduce on rank 0: " + (f"one-shot up to {one_shot.max_bytes // 1024} KiB, then the process group's"
                                           if one_shot is not None else "the process group's alone"))
        decode(llm, 16, args.batch)  # warm up
        plain = decode(llm, STEPS, args.batch)
        print(f"TP={args.tp}, batch {args.batch}: {plain * 1000 / STEPS:.3f} ms per decode step without the "
              f"profiler ({STEPS} steps and the prefill of {args.batch} 64-token prompts)")
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device.startswith("cuda") else [])
        with profile(activities=activities) as prof:
            wall = decode(llm, STEPS, args.batch)
        summarize(prof, wall)
        if args.out:
            prof.export_chrome_trace(args.out)
        host_profile(llm, args.batch)
    finally:
        llm.llm_engine.shutdown()


if __name__ == "__main__":
    main()
