"""Where the GPU time of a benchmark goes: one `ember bench throughput` workload (or one batch-1
latency run) under torch.profiler, summarized as the kinds of kernels (GEMMs, attention, norms,
...) with their share of GPU time, and how much of the wall time the GPU was idle.

    python benchmarks/step_profile.py --workload nano
    python benchmarks/step_profile.py --workload rand7b --num-prompts 64
    python benchmarks/step_profile.py --batch-size 1 --input-len 64 --output-len 256

Only CUDA activity is recorded (kernels and copies, also those replayed from CUDA graphs), so
the host side runs at its normal speed; a warm-up run before the profiled one keeps compilation
and graph capture out of it. --idle records the host's calls too (slower host side) and adds
where the GPU sat idle: the gaps of 20 us or more and the host calls running during them.

    python benchmarks/step_profile.py --workload nano --idle
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from benchmarks import idle_gaps  # noqa: E402
from ember.entrypoints.bench.backends import EmberBackend, add_model_arguments, resolve_model  # noqa: E402
from ember.entrypoints.bench.workloads import WORKLOADS, random_requests, workload_requests  # noqa: E402

# First match wins: a kernel's kind from its name.
KINDS = (
    ("attention", ("_attn_kernel", "_reduce_kernel", "_prefill_kernel", "attention", "flash", "fmha", "attn")),
    ("gemm", ("gemm", "gemv", "cutlass", "xmma", "nvjet", "matmul", "_mm_", "splitk", "sm90", "cublas")),
    ("qk-rope-kv", ("_qk_rotary_kv",)),  # the fused q/k norm + rotary + cache write
    ("rmsnorm", ("rms",)),
    ("rotary", ("rotary", "rope")),
    ("kv write", ("kv_cache", "write_kv")),
    ("silu-mul", ("silu",)),
    ("sampling", ("sample", "argmax", "topk", "top_k", "softmax", "exponential", "sort", "cumsum", "gumbel",
                  "_race_kernel")),
    ("copies", ("memcpy", "memset", "copy", "cat", "index", "gather", "scatter", "fill")),
)


def kind_of(name: str) -> str:
    lowered = name.lower()
    return next((kind for kind, keys in KINDS if any(k in lowered for k in keys)), "other")


def busy_us(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of the kernels' intervals: kernels of two streams overlap."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def summarize(prof, wall_s: float, top: int) -> str:
    by_kind: dict[str, float] = defaultdict(float)
    by_name: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    intervals = []
    for event in prof.events():
        if event.device_type != torch.autograd.DeviceType.CUDA:
            continue
        duration = event.time_range.elapsed_us()
        intervals.append((event.time_range.start, event.time_range.end))
        by_kind[kind_of(event.name)] += duration
        by_name[event.name][0] += duration
        by_name[event.name][1] += 1
    gpu_total = sum(by_kind.values())
    busy = busy_us(intervals)
    lines = [f"wall {wall_s * 1e3:.1f} ms; GPU busy {busy / 1e3:.1f} ms ({100 * busy / (wall_s * 1e6):.1f}% of "
             f"the wall time, idle {100 - 100 * busy / (wall_s * 1e6):.1f}%); kernel time {gpu_total / 1e3:.1f} ms "
             f"in {len(intervals)} kernels/copies", "", f"{'kind':12} {'ms':>10} {'share':>7}"]
    for kind, us in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        lines.append(f"{kind:12} {us / 1e3:10.1f} {100 * us / gpu_total:6.1f}%")
    lines += ["", f"top {top} kernels: total ms, calls, mean us, kind, name"]
    for name, (us, calls) in sorted(by_name.items(), key=lambda kv: -kv[1][0])[:top]:
        lines.append(f"{us / 1e3:10.1f} {calls:8d} {us / calls:9.1f}  {kind_of(name):10} {name[:110]}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default=None)
    parser.add_argument("--num-prompts", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--input-len", type=int, default=64)
    parser.add_argument("--output-len", type=int, default=256)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", default=None, help="Also write the summary to this file.")
    parser.add_argument("--idle", action="store_true", help="also record host calls: the GPU's idle gaps and "
                        "what the host ran during them")
    args = parser.parse_args()

    workload = WORKLOADS.get(args.workload)
    spec = resolve_model(args, workload.shape if workload else None)
    if workload:
        requests = workload_requests(args.workload, args.num_prompts, spec.vocab_size)
        warmup = requests[:8]
    else:
        both = random_requests(2 * args.batch_size, args.input_len, args.output_len, args.seed, spec.vocab_size)
        warmup, requests = both[:args.batch_size], both[args.batch_size:]
    backend = EmberBackend(args, spec)
    backend.generate(warmup, progress=False)
    torch.cuda.synchronize()
    activities = [ProfilerActivity.CUDA] + ([ProfilerActivity.CPU] if args.idle else [])
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        backend.generate(requests, progress=False)
        torch.cuda.synchronize()
        wall = time.perf_counter() - start
    outputs = sum(o for _, o in requests)
    label = args.workload or f"batch {args.batch_size}, {args.input_len} in / {args.output_len} out"
    text = (f"{label} ({spec.name}, {len(requests)} requests, {outputs} output tokens, "
            f"{outputs / wall:.0f} out tok/s under the profiler)\n" + summarize(prof, wall, args.top))
    if args.idle:
        text += "\n\n" + "\n".join(idle_gaps.report(prof, outputs, "output token"))
    print(text, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
