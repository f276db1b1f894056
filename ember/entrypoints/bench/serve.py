"""`ember bench serve`: vLLM's `bench serve` (benchmark_serving.py) against any OpenAI-compatible
server, Ember's or another's. Every request is streamed; the result block and the JSON give
request and token throughput, TTFT, time per output token, inter-token and end-to-end latency."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
from datetime import datetime

from ember.entrypoints.bench.workloads import (WORKLOADS, Request, random_requests, sharegpt_requests,
                                               workload_label, workload_requests)

ENDPOINTS = ("/v1/completions", "/v1/chat/completions")
# vLLM's defaults.
DEFAULT_NUM_PROMPTS = 1000
DEFAULT_INPUT_LEN = 1024
DEFAULT_OUTPUT_LEN = 128


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("serve", help="Online serving benchmark (vLLM's bench serve).",
                                   description=__doc__)
    server = parser.add_argument_group("server")
    server.add_argument("--base-url", default=None, help="e.g. http://127.0.0.1:8000 (default: from --host/--port)")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=8000)
    server.add_argument("--endpoint", default="/v1/completions",
                        help=f"{' or '.join(ENDPOINTS)} (the latter takes text: prompts of token ids are "
                             f"decoded with --tokenizer)")
    server.add_argument("--model", default=None, help="The served model name (default: the first of /v1/models).")
    server.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"),
                        help="Sent as 'Authorization: Bearer' (default: $OPENAI_API_KEY).")
    reqs = parser.add_argument_group("requests: --workload, --dataset, or random prompts of token ids")
    reqs.add_argument("--workload", choices=[w for w in WORKLOADS if w != "seed"],
                      help="BENCHMARKS.md's mixed requests (100..1024 in / out): rand7b (128) or nano (256).")
    reqs.add_argument("--ids-modulo-vocab", action="store_true",
                      help="With --workload: each id taken modulo the vocabulary of --tokenizer (for a server "
                           "whose vocabulary is under 150,000; `ember bench throughput --ids-modulo-vocab` "
                           "makes the same requests).")
    reqs.add_argument("--dataset", default=None, help="ShareGPT-format JSON file.")
    reqs.add_argument("--sharegpt-output-len", type=int, default=None,
                      help="Output length of every --dataset request (default: the reply's length).")
    reqs.add_argument("--random-input-len", type=int, default=DEFAULT_INPUT_LEN)
    reqs.add_argument("--random-output-len", type=int, default=DEFAULT_OUTPUT_LEN)
    reqs.add_argument("--num-prompts", type=int, default=None,
                      help=f"Number of requests (default {DEFAULT_NUM_PROMPTS}; with --workload, all of its "
                           f"requests, or the first N).")
    reqs.add_argument("--tokenizer", default=None,
                      help="For --dataset, random prompts (its vocabulary) and the chat endpoint "
                           "(default: --model).")
    reqs.add_argument("--trust-remote-code", action="store_true")
    reqs.add_argument("--seed", type=int, default=0)
    send = parser.add_argument_group("sending")
    send.add_argument("--request-rate", type=float, default=float("inf"),
                      help="Requests per second, Poisson arrivals (default inf: all at once).")
    send.add_argument("--max-concurrency", type=int, default=None, help="At most this many requests in flight.")
    send.add_argument("--ignore-eos", action="store_true", help="Generate exactly max_tokens (vLLM's ignore_eos).")
    send.add_argument("--temperature", type=float, default=None, help="Sent when given (default: the server's).")
    send.add_argument("--disable-tqdm", action="store_true")
    send.add_argument("--output-json", default=None, help="Write the results to this JSON file.")
    return parser


def main(args: argparse.Namespace) -> dict:
    from ember.entrypoints.bench.serve_client import run_requests
    from ember.entrypoints.bench.serve_metrics import format_result, summarize

    _check_flags(args)
    base_url = (args.base_url or f"http://{args.host}:{args.port}").rstrip("/")
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else None
    model = args.model or _first_model(base_url, headers)
    chat = args.endpoint == "/v1/chat/completions"
    requests, label, tokenizer = build_requests(args, model, chat)
    payloads = [_payload(args, model, chat, ids, output_len, tokenizer) for ids, output_len in requests]
    print(f"{label}: {len(requests)} requests to {base_url}{args.endpoint} ({model}), request rate "
          f"{args.request_rate}, max concurrency {args.max_concurrency}", flush=True)

    results, duration = asyncio.run(run_requests(
        base_url + args.endpoint, payloads, chat, args.request_rate, args.max_concurrency, args.seed,
        headers, progress=not args.disable_tqdm))

    summary = summarize(results, duration)
    print(format_result(summary, args.max_concurrency,
                        None if args.request_rate == float("inf") else args.request_rate), flush=True)
    errors = [r.error for r in results if not r.success]
    if errors:
        print(f"{len(errors)} requests failed; the first: {errors[0]}", flush=True)
    short = sum(r.success and r.output_tokens != o for r, (_, o) in zip(results, requests))
    if args.ignore_eos and short:
        print(f"{short} requests did not produce their max_tokens despite --ignore-eos", flush=True)
    output = {"date": datetime.now().strftime("%Y%m%d-%H%M%S"), "base_url": base_url, "endpoint": args.endpoint,
              "model_id": model, "workload": label, "num_prompts": len(requests),
              "request_rate": "inf" if args.request_rate == float("inf") else args.request_rate,
              "max_concurrency": args.max_concurrency, "ignore_eos": args.ignore_eos, "seed": args.seed,
              **summary, "num_short": short,
              "input_lens": [r.prompt_tokens for r in results], "output_lens": [r.output_tokens for r in results],
              "requested_output_lens": [o for _, o in requests], "ttfts": [r.ttft for r in results],
              "itls": [r.itl for r in results], "errors": errors}
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump(output, f, indent=2)
    return output


def _check_flags(args: argparse.Namespace) -> None:
    if args.endpoint not in ENDPOINTS:
        raise ValueError(f"--endpoint must be one of {', '.join(ENDPOINTS)}.")
    if args.workload and args.dataset:
        raise ValueError("give --workload or --dataset, not both.")
    if args.request_rate <= 0:
        raise ValueError("--request-rate must be positive (inf sends every request at once).")
    if args.max_concurrency is not None and args.max_concurrency < 1:
        raise ValueError("--max-concurrency must be at least 1.")


def _first_model(base_url: str, headers: dict | None) -> str:
    import httpx

    response = httpx.get(base_url + "/v1/models", headers=headers, timeout=30)
    response.raise_for_status()
    return response.json()["data"][0]["id"]


def build_requests(args: argparse.Namespace, model: str, chat: bool) -> tuple[list[Request], str, object]:
    """The requests as token ids and output lengths, a label for them, and the tokenizer when
    one was needed (a dataset, random ids drawn from its vocabulary, text for the chat endpoint)."""
    tokenizer = None
    if chat or not args.workload or args.ids_modulo_vocab:
        from ember.tokenizer import load_tokenizer

        name = args.tokenizer or model
        try:
            tokenizer = load_tokenizer(name, args.trust_remote_code)
        except (OSError, ValueError) as e:
            raise ValueError(f"no tokenizer at {name!r} ({e}); give --tokenizer (a directory or hub id).") from e
    if args.workload:
        if tokenizer is None:
            return workload_requests(args.workload, args.num_prompts), args.workload, None
        vocab = len(tokenizer)
        requests = workload_requests(args.workload, args.num_prompts, vocab, args.ids_modulo_vocab)
        return requests, workload_label(args.workload, vocab), tokenizer
    num = args.num_prompts or DEFAULT_NUM_PROMPTS
    if args.dataset:
        requests = sharegpt_requests(args.dataset, num, tokenizer, args.sharegpt_output_len, args.seed)
        return requests, "dataset:" + os.path.basename(args.dataset), tokenizer
    requests = random_requests(num, args.random_input_len, args.random_output_len, args.seed, len(tokenizer))
    return requests, f"random_{args.random_input_len}in_{args.random_output_len}out_x{num}", tokenizer


def _payload(args: argparse.Namespace, model: str, chat: bool, ids: list[int], output_len: int,
             tokenizer) -> dict:
    payload = {"model": model, "stream": True, "stream_options": {"include_usage": True}}
    if chat:
        payload.update(messages=[{"role": "user", "content": tokenizer.decode(ids)}],
                       max_completion_tokens=output_len)
    else:
        # Token ids, so that the server sees exactly the prompts an offline run gets.
        payload.update(prompt=ids, max_tokens=output_len)
    if args.ignore_eos:
        payload["ignore_eos"] = True
    if args.temperature is not None:
        payload["temperature"] = args.temperature
    return payload
