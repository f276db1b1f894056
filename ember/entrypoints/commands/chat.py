"""`ember chat`: an interactive chat in the terminal, the reply streamed as it comes. Against
a running server with `--url`, else with a local engine (`--model`, default: the embedded
model). Empty line: nothing; `exit`, `quit` or Ctrl-D: leave."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Iterator

from ember.entrypoints.commands.local_engine import load_engine, stream_text
from ember.entrypoints.engine_args import add_engine_args
from ember.entrypoints.sampling_args import add_sampling_args, sampling_overrides, sampling_params_with
from ember.tokenizer import render_chat


def register(subparsers) -> None:
    parser = subparsers.add_parser("chat", help="chat in the terminal, with a server (--url) or a local model",
                                   description="Interactive chat; replies stream as they are generated.")
    parser.add_argument("--url", default=None, help="a running server, e.g. http://localhost:8000")
    parser.add_argument("--api-key", default=None, help="the server's API key (or EMBER_API_KEY)")
    parser.add_argument("--system", default=None, help="a system message to start the conversation")
    add_engine_args(parser)
    add_sampling_args(parser)
    parser.set_defaults(func=run)


class RemoteChat:
    """Streams replies from /v1/chat/completions of a running server."""

    def __init__(self, url: str, model: str | None, api_key: str | None):
        import httpx

        base = url.rstrip("/").removesuffix("/v1")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=base, headers=headers, timeout=None)
        self.model = model or self.client.get("/v1/models").raise_for_status().json()["data"][0]["id"]

    def reply(self, messages: list[dict], overrides: dict) -> Iterator[str]:
        body = {"model": self.model, "messages": messages, "stream": True, **overrides}
        with self.client.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                response.read()
                raise RuntimeError(response.json().get("error", {}).get("message", response.text))
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[len("data: "):])
                if "error" in event:
                    raise RuntimeError(event["error"]["message"])
                for choice in event["choices"]:
                    yield choice["delta"].get("content") or ""


class LocalChat:
    def __init__(self, args: argparse.Namespace):
        self.engine = load_engine(args)

    def reply(self, messages: list[dict], overrides: dict) -> Iterator[str]:
        tokenizer = self.engine.tokenizer
        text = render_chat(tokenizer, messages)
        prompt = {"prompt": text, "prompt_token_ids": tokenizer.encode(text, add_special_tokens=False)}
        params = sampling_params_with(self.engine.default_sampling_params(), overrides)
        yield from stream_text(self.engine, prompt, params)


def run(args: argparse.Namespace) -> int:
    if args.url:
        backend = RemoteChat(args.url, args.model, args.api_key or os.environ.get("EMBER_API_KEY"))
    else:
        backend = LocalChat(args)
    overrides = sampling_overrides(args)
    messages = [{"role": "system", "content": args.system}] if args.system else []
    interactive = sys.stdin.isatty()
    while True:
        try:
            line = input("> " if interactive else "")
        except (EOFError, KeyboardInterrupt):
            break
        if line.strip() in ("exit", "quit"):
            break
        if not line.strip():
            continue
        messages.append({"role": "user", "content": line})
        reply = ""
        try:
            for piece in backend.reply(messages, overrides):
                sys.stdout.write(piece)
                sys.stdout.flush()
                reply += piece
        except (RuntimeError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            messages.pop()
            continue
        sys.stdout.write("\n")
        messages.append({"role": "assistant", "content": reply})
    return 0
