"""`ember bench throughput`: vLLM's benchmark_throughput.py. Every request goes in at once;
only generation is timed (not startup); the line printed is vLLM's."""
from __future__ import annotations

import argparse
import os

from ember.entrypoints.bench.backends import (add_model_arguments, load_backend, resolve_model, run_info,
                                              write_results)
from ember.entrypoints.bench.workloads import (SHAPES, WORKLOADS, Request, random_requests, sharegpt_requests,
                                               workload_label, workload_requests)

# vLLM's defaults: --num-prompts 1000; the static batch of hf_baseline.py (HFB).
DEFAULT_NUM_PROMPTS = 1000
DEFAULT_HF_BATCH = 64


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("throughput", help="Offline throughput (vLLM's benchmark_throughput.py).",
                                   description=__doc__)
    add_model_arguments(parser)
    reqs = parser.add_argument_group("requests: one of --workload, --dataset, --input-len/--output-len")
    reqs.add_argument("--workload", choices=list(WORKLOADS),
                      help="A fixed workload of BENCHMARKS.md (seed: 25 x 64/128; rand7b: 128 and nano: 256 "
                           "requests of 100..1024 in/out); its model shape is the default --model.")
    reqs.add_argument("--ids-modulo-vocab", action="store_true",
                      help="With --workload and a vocabulary under 150,000: each id taken modulo the vocabulary "
                           "(same lengths; as `ember bench serve --ids-modulo-vocab` sends them).")
    reqs.add_argument("--dataset", default=None, help="ShareGPT-format JSON file.")
    reqs.add_argument("--input-len", type=int, default=None, help="Prompt length of random-id requests.")
    reqs.add_argument("--output-len", type=int, default=None,
                      help="Output length of every request (overrides the dataset's).")
    reqs.add_argument("--num-prompts", type=int, default=None,
                      help=f"Number of requests (default {DEFAULT_NUM_PROMPTS}; with --workload, all of "
                           f"its requests, or the first N).")
    hf = parser.add_argument_group("hf backend")
    hf.add_argument("--hf-max-batch-size", type=int, default=None,
                    help=f"Static batch size (default: the workload's baseline batch, else {DEFAULT_HF_BATCH}).")
    hf.add_argument("--hf-continuous", action="store_true",
                    help="transformers' continuous batching instead of static batches.")
    return parser


def _check_flags(args: argparse.Namespace) -> None:
    if args.workload and (args.dataset or args.input_len is not None or args.output_len is not None):
        raise ValueError("--workload fixes the requests; drop --dataset/--input-len/--output-len.")
    if not args.workload and not args.dataset and (args.input_len is None or args.output_len is None):
        raise ValueError("give --workload, --dataset, or both --input-len and --output-len.")


def build_requests(args: argparse.Namespace, spec) -> tuple[list[Request], str]:
    """The requests and a label for them."""
    num = args.num_prompts
    if args.workload:
        requests = workload_requests(args.workload, num, spec.vocab_size, args.ids_modulo_vocab)
        return requests, workload_label(args.workload, spec.vocab_size)
    if args.dataset:
        from ember.tokenizer import load_tokenizer

        if args.tokenizer is None and spec.name in SHAPES:
            raise ValueError("a built-in shape has no tokenizer: give --tokenizer with --dataset.")
        tokenizer = load_tokenizer(args.tokenizer or spec.path, args.trust_remote_code)
        requests = sharegpt_requests(args.dataset, num or DEFAULT_NUM_PROMPTS, tokenizer, args.output_len, args.seed)
        return requests, "dataset:" + os.path.basename(args.dataset)
    num = num or DEFAULT_NUM_PROMPTS
    requests = random_requests(num, args.input_len, args.output_len, args.seed, spec.vocab_size)
    return requests, f"random_{args.input_len}in_{args.output_len}out_x{num}"


def main(args: argparse.Namespace) -> dict:
    _check_flags(args)
    workload = WORKLOADS.get(args.workload)
    spec = resolve_model(args, workload.shape if workload else None)
    requests, label = build_requests(args, spec)
    hf_batch = args.hf_max_batch_size or (workload.hf_max_batch_size if workload else DEFAULT_HF_BATCH)
    backend = load_backend(args, spec, hf_batch, args.hf_continuous)

    input_tokens = sum(len(p) for p, _ in requests)
    output_tokens = sum(o for _, o in requests)
    print(f"{label}: {len(requests)} requests, {input_tokens} input and {output_tokens} output tokens; "
          f"{backend.name} ready in {backend.startup_seconds:.1f} s", flush=True)
    elapsed = backend.generate(requests)

    total = input_tokens + output_tokens
    print(f"Throughput: {len(requests) / elapsed:.2f} requests/s, {total / elapsed:.2f} total tokens/s, "
          f"{output_tokens / elapsed:.2f} output tokens/s", flush=True)
    results = {"elapsed_time": elapsed, "num_requests": len(requests), "total_num_tokens": total,
               "input_tokens": input_tokens, "output_tokens": output_tokens,
               "requests_per_second": len(requests) / elapsed, "tokens_per_second": total / elapsed,
               "output_tokens_per_second": output_tokens / elapsed, "workload": label,
               **run_info(args, spec, backend)}
    write_results(args.output_json, results)
    return results
