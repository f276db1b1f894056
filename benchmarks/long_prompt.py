"""One long fresh prompt end to end through `LLM.generate` (random weights at a built-in shape,
1 output token by default): seconds per request, the prefill's TFLOP/s, and with --profile the
GPU time of one request split into attention, GEMMs and the rest. Unlike `ember bench latency`
it takes --rope-scaling (YaRN for 128k) and can run the unified attention kernel alone
(--attention unified: every sequence on the kernel that served prefill before issue 19) or the
Triton kernels only (--attention triton), so the before and after run in one device call.

    python benchmarks/long_prompt.py --input-len 32000
    python benchmarks/long_prompt.py --shape qwen3-0.6b --input-len 131072 --max-model-len 131072 \\
        --rope-scaling '{"rope_type":"yarn","factor":4.0,"original_max_position_embeddings":32768}'
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from ember import LLM, SamplingParams  # noqa: E402
from ember.entrypoints.bench.workloads import SHAPES, id_range, shape_dir  # noqa: E402


def prefill_tflop(config, n: int) -> tuple[float, float]:
    """(all, attention's) matmul TFLOP of one n-token prefill: the layers' linear maps plus
    causal attention."""
    h, layers = config.hidden_size, config.num_hidden_layers
    hq, hkv = config.num_attention_heads, config.num_key_value_heads
    d = getattr(config, "head_dim", None) or h // hq
    linear = 2 * n * layers * (h * (hq + 2 * hkv) * d + hq * d * h + 3 * h * config.intermediate_size)
    attention = 4 * d * hq * layers * n * (n + 1) / 2
    return (linear + attention) / 1e12, attention / 1e12


def kernel_split(prof) -> dict[str, float]:
    """GPU milliseconds by kind of kernel in a profile."""
    split = {"attention": 0.0, "gemm": 0.0, "other": 0.0}
    for e in prof.key_averages():
        us = getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0.0)
        if not us or e.key.startswith(("ProfilerStep", "cuda", "aten::")):
            continue
        name = e.key.lower()
        kind = ("attention" if any(s in name for s in ("attn", "attention", "prefill_kernel", "flash", "fmha", "sdpa"))
                else "gemm" if any(s in name for s in ("gemm", "nvjet", "cutlass", "sm90_xmma", "matmul"))
                else "other")
        split[kind] += us / 1e3
    return split


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="qwen2.5-7b", choices=list(SHAPES))
    ap.add_argument("--model", default=None, help="a checkpoint directory instead of --shape")
    ap.add_argument("--device", default=None)
    ap.add_argument("--input-len", type=int, required=True)
    ap.add_argument("--output-len", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--warmup-len", type=int, default=None, help="warm-up prompt length (default: --input-len)")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--max-model-len", type=int, default=None)
    ap.add_argument("--max-num-batched-tokens", type=int, default=None)
    ap.add_argument("--rope-scaling", type=json.loads, default=None)
    ap.add_argument("--attention", choices=["routed", "triton", "unified"], default="routed",
                    help="routed: as the engine runs; triton: no cuDNN for a lone sequence; "
                         "unified: the unified kernel for every sequence (before issue 19)")
    ap.add_argument("--profile", action="store_true", help="also profile one more request's GPU kernels")
    ap.add_argument("--output-json", default=None)
    args = ap.parse_args()
    if args.attention == "unified":
        import ember.kernels.paged_attention as pa
        pa.LONG_Q_LEN = 2**31 - 1  # nothing is long: the unified kernel takes every sequence
    elif args.attention == "triton":
        import ember.kernels.paged_attention as pa
        pa.cudnn_prefill_attend = lambda *shape: None  # the Triton prefill kernel serves a lone sequence too

    engine = {k: v for k, v in (("max_model_len", args.max_model_len), ("rope_scaling", args.rope_scaling),
                                ("max_num_batched_tokens", args.max_num_batched_tokens)) if v is not None}
    if args.device:
        engine["device"] = args.device
    llm = LLM(args.model or shape_dir(args.shape), load_format="dummy", skip_tokenizer_init=True, **engine)
    rng, (lo, hi) = random.Random(0), id_range(llm.llm_engine.config.hf_config.vocab_size)
    params = SamplingParams(max_tokens=args.output_len, ignore_eos=True, temperature=0.0)

    def one_request(n: int = args.input_len) -> float:  # a fresh prompt each time: no prefix-cache hit
        ids = [rng.randrange(lo, hi) for _ in range(n)]
        start = time.perf_counter()
        llm.generate([{"prompt_token_ids": ids}], params, use_tqdm=False)
        return time.perf_counter() - start

    for _ in range(args.warmup):
        one_request(args.warmup_len or args.input_len)
    times = [one_request() for _ in range(args.iters)]  # in order: the first pays new shapes' setup
    median = sorted(times)[len(times) // 2]
    total, attention = prefill_tflop(llm.llm_engine.config.hf_config, args.input_len)
    result = {"shape": args.model or args.shape, "input_len": args.input_len, "output_len": args.output_len,
              "attention": args.attention, "rope_scaling": args.rope_scaling,
              "max_num_batched_tokens": llm.llm_engine.config.max_num_batched_tokens,
              "seconds": times, "median_s": median,
              "prefill_tflop": round(total, 3), "attention_tflop": round(attention, 3),
              "tflops_per_s": round(total / median, 1),
              "startup_s": round(llm.llm_engine.startup_seconds, 1)}
    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            one_request()
        split = kernel_split(prof)
        result["gpu_ms"] = {k: round(v, 1) for k, v in split.items()}
        if split["attention"]:
            result["attention_tflops_per_s"] = round(attention / split["attention"] * 1e3, 1)
        print(prof.key_averages().table(sort_by="device_time_total", row_limit=12))
    print(json.dumps(result), flush=True)
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
