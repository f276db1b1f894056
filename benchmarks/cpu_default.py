"""Issue 21's CPU table in one run: the embedded default model (SmolLM2-135M-Instruct Q4_1 GGUF),
greedy, one-turn chat prompt, 128 new tokens with EOS ignored, 1 and 16 streams, for
- Ember offline (`LLM(...)`, in this process),
- Ember through `ember serve` (a subprocess; streamed chat completions, 16 at once),
- transformers (the GGUF dequantized, `generate`, a static batch of 16),
- llama.cpp (llama-cpp-python, Q4_1 kept, one stream; only with --llamacpp-python, a separate
  venv's interpreter: a measurement, never a dependency of Ember).
Each figure is the best of --repeats; "ready in" is from the start of construction (or of the
server process) to the first request it can take.

    .venv/bin/python benchmarks/cpu_default.py --llamacpp-python /tmp/llamacpp-venv/bin/python
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import time

PROMPT = "Write a short story about a lighthouse keeper."
NEW_TOKENS = 128


def chat_prompt(tokenizer) -> str:
    return tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], tokenize=False,
                                         add_generation_prompt=True)


def ember_offline(model: str, repeats: int) -> dict:
    from ember import LLM, SamplingParams

    start = time.perf_counter()
    llm = LLM(model=model)
    result = {"ready_s": time.perf_counter() - start}
    prompt = chat_prompt(llm.get_tokenizer())
    params = SamplingParams(temperature=0, max_tokens=NEW_TOKENS, ignore_eos=True)
    for streams in (1, 16):
        best = 0.0
        for _ in range(repeats):
            start = time.perf_counter()
            outputs = llm.generate([prompt] * streams, params, use_tqdm=False)
            tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
            best = max(best, tokens / (time.perf_counter() - start))
        result[streams] = best
    del llm
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _stream_chats(base_url: str, streams: int) -> int:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="none")

    async def one() -> int:
        chunks = await client.chat.completions.create(
            model=client_model, messages=[{"role": "user", "content": PROMPT}], temperature=0,
            max_tokens=NEW_TOKENS, stream=True, stream_options={"include_usage": True},
            extra_body={"ignore_eos": True})
        tokens = 0
        async for chunk in chunks:
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
        return tokens

    client_model = (await client.models.list()).data[0].id
    counts = await asyncio.gather(*(one() for _ in range(streams)))
    await client.close()
    return sum(counts)


def start_server(model: str, timeout: float = 120.0) -> tuple[subprocess.Popen, str]:
    """`ember serve MODEL` on a free port, once /health answers 200: (the process, its /v1 URL)."""
    import httpx

    port = _free_port()
    server = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "ember"), "serve", "--model", model,
                               "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"ember serve exited: {server.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            server.kill()
            raise RuntimeError(f"ember serve not ready in {timeout:.0f} s")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server, f"http://127.0.0.1:{port}/v1"
        except httpx.HTTPError:
            time.sleep(0.05)  # not listening yet: the next try in 50 ms


def ember_served(model: str, repeats: int) -> dict:
    start = time.perf_counter()
    server, url = start_server(model)
    try:
        result = {"ready_s": time.perf_counter() - start}
        for streams in (1, 16):
            best = 0.0
            for _ in range(repeats):
                t = time.perf_counter()
                tokens = asyncio.run(_stream_chats(url, streams))
                best = max(best, tokens / (time.perf_counter() - t))
            result[streams] = best
        return result
    finally:
        server.terminate()
        server.wait(timeout=30)


def transformers_generate(model: str, repeats: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.split(model)
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    hf = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    result = {"ready_s": time.perf_counter() - start}
    ids = tokenizer(chat_prompt(tokenizer), return_tensors="pt").input_ids
    for streams in (1, 16):
        batch = ids.expand(streams, -1)
        best = 0.0
        for _ in range(repeats):
            t = time.perf_counter()
            with torch.inference_mode():
                out = hf.generate(batch, attention_mask=torch.ones_like(batch), do_sample=False,
                                  max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, pad_token_id=0)
            best = max(best, (out.shape[1] - batch.shape[1]) * streams / (time.perf_counter() - t))
        result[streams] = best
    return result


LLAMACPP_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from llama_cpp import Llama
    path, prompt, new_tokens, repeats, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    start = time.perf_counter()
    llm = Llama(model_path=path, n_ctx=1024, n_threads=threads, verbose=False)
    ready = time.perf_counter() - start
    eos = llm.token_eos()
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        out = llm.create_completion(prompt, max_tokens=new_tokens, temperature=0.0, logit_bias={eos: -1e9})
        best = max(best, out["usage"]["completion_tokens"] / (time.perf_counter() - t))
    print(json.dumps({"ready_s": ready, "1": best}))
""")


def llamacpp(python: str, model: str, prompt: str, repeats: int, threads: int) -> dict:
    done = subprocess.run([python, "-c", LLAMACPP_SCRIPT, model, prompt, str(NEW_TOKENS), str(repeats), str(threads)],
                          capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"ready_s": result["ready_s"], 1: result["1"]}


def main() -> None:
    from ember.entrypoints.engine_args import default_model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a GGUF file (default: the embedded model)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--llamacpp-python", default=None, help="an interpreter with llama_cpp installed")
    parser.add_argument("--only", default="ember,serve,transformers,llamacpp")
    args = parser.parse_args()
    model = args.model or default_model_path()
    only = set(args.only.split(","))
    import torch
    from transformers import AutoTokenizer

    folder, name = os.path.split(model)
    prompt = chat_prompt(AutoTokenizer.from_pretrained(folder, gguf_file=name))
    rows = {}
    load = os.getloadavg()[0]
    if "ember" in only:
        rows["Ember offline (`LLM(...)`)"] = ember_offline(model, args.repeats)
    if "serve" in only:
        rows["Ember, `ember serve` (streamed chat)"] = ember_served(model, args.repeats)
    if "transformers" in only:
        rows["transformers (GGUF dequantized, fp32, `generate`)"] = transformers_generate(model, args.repeats)
    if "llamacpp" in only and args.llamacpp_python:
        rows[f"llama.cpp (llama-cpp-python, Q4_1, {torch.get_num_threads()} threads)"] = llamacpp(
            args.llamacpp_python, model, prompt, args.repeats, torch.get_num_threads())
    print(f"\nload average at start {load:.1f}, after {os.getloadavg()[0]:.1f}; torch threads {torch.get_num_threads()}")
    print("| engine | 1 stream | 16 streams | ready in |\n|---|---|---|---|")
    for engine, r in rows.items():
        sixteen = f"{r[16]:.1f} output tok/s" if 16 in r else "—"
        print(f"| {engine} | {r[1]:.1f} tok/s | {sixteen} | {r['ready_s']:.1f} s |")


if __name__ == "__main__":
    main()
