"""Tensor parallelism on the rand7b workload (BENCHMARKS.md: 128 requests, 100..1024 tokens in
and out, the Qwen2.5-7B shape with random weights), greedy so that tensor-parallel sizes can be
compared token for token. `--tp N --out F` runs it and prints the throughput in `ember bench`'s
format and how long the engine took to shut down; `--num-prompts N` takes the first N requests;
`--compare A B` compares two runs. benchmarks/tp_gpu.sh runs TP=1 and TP=2."""
from __future__ import annotations

import argparse
import json
import time

from ember import LLM, SamplingParams
from ember.distributed.parallel_state import one_shot_all_reduce
from ember.entrypoints.bench.workloads import WORKLOADS, shape_dir, workload_requests


def run(tp: int, out: str, num_prompts: int | None) -> None:
    requests = workload_requests("rand7b", num_prompts)
    llm = LLM(shape_dir(WORKLOADS["rand7b"].shape), tensor_parallel_size=tp, load_format="dummy",
              skip_tokenizer_init=True)
    if tp > 1:
        one_shot = one_shot_all_reduce()
        print("all-reduce: " + (f"one-shot up to {one_shot.max_bytes // 1024} KiB, then NCCL"
                                if one_shot is not None else "NCCL alone"))
    prompts = [{"prompt_token_ids": p} for p, _ in requests]
    params = [SamplingParams(temperature=0.0, ignore_eos=True, max_tokens=o) for _, o in requests]
    start = time.perf_counter()
    outputs = llm.generate(prompts, params)
    seconds = time.perf_counter() - start
    llm.llm_engine.shutdown()
    shutdown_seconds = time.perf_counter() - start - seconds
    tokens = [o.outputs[0].token_ids for o in outputs]
    total_in, total_out = sum(len(p) for p, _ in requests), sum(map(len, tokens))
    print(f"TP={tp}: {len(requests)} requests in {seconds:.2f} s, startup {llm.llm_engine.startup_seconds:.1f} s, "
          f"shutdown {shutdown_seconds:.2f} s")
    print(f"Throughput: {len(requests) / seconds:.2f} requests/s, {(total_in + total_out) / seconds:.2f} total "
          f"tokens/s, {total_out / seconds:.2f} output tokens/s")
    with open(out, "w") as f:
        json.dump({"tp": tp, "seconds": seconds, "output_tokens": total_out, "tokens": tokens}, f)


def compare(a: str, b: str) -> None:
    """Random weights in bf16 leave near-ties among logits, and TP sums partial products in
    another order: where a request's tokens part, they part for good. Reported, not hidden."""
    with open(a) as f:
        ra = json.load(f)
    with open(b) as f:
        rb = json.load(f)
    same = sum(x == y for x, y in zip(ra["tokens"], rb["tokens"]))
    firsts = [next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), None)
              for x, y in zip(ra["tokens"], rb["tokens"])]
    parted = sorted(i for i in firsts if i is not None)
    print(f"TP={ra['tp']} vs TP={rb['tp']}: {same}/{len(ra['tokens'])} requests token-for-token equal; "
          f"first differing position of the others: {parted[:20]}")
    print(f"Output throughput TP={rb['tp']} / TP={ra['tp']}: "
          f"{rb['output_tokens'] / rb['seconds'] / (ra['output_tokens'] / ra['seconds']):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tp", type=int)
    parser.add_argument("--out")
    parser.add_argument("--num-prompts", type=int, default=None, help="the first N requests (default: all 128)")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"))
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
    else:
        run(args.tp, args.out, args.num_prompts)


if __name__ == "__main__":
    main()
