"""`ember bench latency`: vLLM's benchmark_latency.py. One batch of random prompts, generated
end to end again and again; reports the mean, the percentiles and the time per output token."""
from __future__ import annotations

import argparse

import numpy as np
from tqdm.auto import tqdm

from ember.entrypoints.bench.backends import (add_model_arguments, load_backend, resolve_model, run_info,
                                              write_results)
from ember.entrypoints.bench.workloads import random_requests

PERCENTAGES = [10, 25, 50, 75, 90, 99]


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("latency", help="Latency of one batch (vLLM's benchmark_latency.py).",
                                   description=__doc__)
    add_model_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--input-len", type=int, default=32)
    parser.add_argument("--output-len", type=int, default=128)
    parser.add_argument("--num-iters-warmup", type=int, default=10)
    parser.add_argument("--num-iters", type=int, default=30)
    return parser


def main(args: argparse.Namespace) -> dict:
    spec = resolve_model(args)
    # Fresh prompts for every iteration: repeating one batch would let Ember's prefix cache skip
    # the prefill after the first iteration, which a real request never gets.
    iters = args.num_iters_warmup + args.num_iters
    requests = random_requests(args.batch_size * iters, args.input_len, args.output_len, args.seed, spec.vocab_size)
    batches = [requests[i:i + args.batch_size] for i in range(0, len(requests), args.batch_size)]
    backend = load_backend(args, spec, hf_max_batch_size=args.batch_size)
    print(f"{backend.name} ready in {backend.startup_seconds:.1f} s; batch {args.batch_size}, "
          f"{args.input_len} in / {args.output_len} out", flush=True)

    for batch in tqdm(batches[:args.num_iters_warmup], desc="Warmup iterations"):
        backend.generate(batch, progress=False)
    latencies = np.array([backend.generate(batch, progress=False)
                          for batch in tqdm(batches[args.num_iters_warmup:], desc="Profiling iterations")])

    percentiles = np.percentile(latencies, PERCENTAGES)
    per_token_ms = latencies.mean() / args.output_len * 1000
    print(f"Avg latency: {latencies.mean()} seconds")
    for percentage, value in zip(PERCENTAGES, percentiles):
        print(f"{percentage}% percentile latency: {value} seconds")
    print(f"Avg time per output token: {per_token_ms:.2f} ms", flush=True)
    results = {"avg_latency": float(latencies.mean()), "latencies": latencies.tolist(),
               "percentiles": {str(p): float(v) for p, v in zip(PERCENTAGES, percentiles)},
               "time_per_output_token_ms": per_token_ms, "batch_size": args.batch_size,
               "input_len": args.input_len, "output_len": args.output_len, **run_info(args, spec, backend)}
    write_results(args.output_json, results)
    return results
