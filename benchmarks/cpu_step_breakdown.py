"""Where a decode token's time goes on the CPU, for the embedded default model (issue 21): the
greedy one-turn chat prompt, N new tokens at 1 and 16 streams, `LLM(...)` offline.

The step's wall time comes from a run without the profiler; torch.profiler then attributes the
ops' own (self) time to matmuls, attention (KV write and paged decode) and the other tensor ops
(norms, rotary, SiLU, sampling, input building); the rest of the wall time is Python and
dispatch outside the ops. Times are per step (one token per stream), in ms.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cpu_step_breakdown.py
"""
from __future__ import annotations

import argparse
import collections
import os
import time

MATMULS = {"aten::_weight_int4pack_mm_for_cpu", "aten::_weight_int8pack_mm", "aten::mm", "aten::addmm"}
# The torch backend's KV write and decode attention (ember/kernels/paged_attention_torch.py).
ATTENTION = {"aten::baddbmm", "aten::bmm", "aten::_softmax", "aten::index_fill_", "aten::index_copy_",
             "aten::index_select", "aten::_scaled_dot_product_flash_attention_for_cpu"}


def breakdown(llm, prompt: str, streams: int, new_tokens: int) -> dict:
    from torch.profiler import ProfilerActivity, profile

    from ember import SamplingParams

    params = SamplingParams(temperature=0, max_tokens=new_tokens, ignore_eos=True)
    llm.generate([prompt] * streams, params, use_tqdm=False)  # warm
    start = time.perf_counter()
    llm.generate([prompt] * streams, params, use_tqdm=False)
    wall = time.perf_counter() - start
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        llm.generate([prompt] * streams, params, use_tqdm=False)
    parts = collections.Counter()
    for event in prof.key_averages():
        kind = "matmuls" if event.key in MATMULS else "attention" if event.key in ATTENTION else "other ops"
        parts[kind] += event.self_cpu_time_total / 1e6
    steps = new_tokens
    row = {kind: parts[kind] / steps * 1e3 for kind in ("matmuls", "attention", "other ops")}
    row["step"] = wall / steps * 1e3
    row["Python and dispatch"] = max(0.0, row["step"] - sum(parts.values()) / steps * 1e3)
    row["tok/s"] = streams * new_tokens / wall
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a GGUF file (default: the embedded model)")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--streams", default="1,16")
    args = parser.parse_args()
    from ember import LLM
    from ember.entrypoints.engine_args import default_model_path

    llm = LLM(model=args.model or default_model_path())
    prompt = llm.get_tokenizer().apply_chat_template(
        [{"role": "user", "content": "Write a short story about a lighthouse keeper."}], tokenize=False,
        add_generation_prompt=True)
    import torch

    print(f"load average {os.getloadavg()[0]:.1f}; torch threads {torch.get_num_threads()}")
    print("| streams | step (ms) | matmuls | attention | other ops | Python and dispatch | tok/s |")
    print("|---|---|---|---|---|---|---|")
    for streams in (int(s) for s in args.streams.split(",")):
        r = breakdown(llm, prompt, streams, args.new_tokens)
        print(f"| {streams} | {r['step']:.1f} | {r['matmuls']:.1f} | {r['attention']:.1f} | {r['other ops']:.1f} | "
              f"{r['Python and dispatch']:.1f} | {r['tok/s']:.1f} |")


if __name__ == "__main__":
    main()
