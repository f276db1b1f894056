"""`ember generate [--model M] [flags] "prompt"`: one prompt through a local engine, the
text streamed to stdout as it is generated."""
from __future__ import annotations

import argparse
import sys

from ember.entrypoints.commands.local_engine import load_engine, stream_text
from ember.entrypoints.engine_args import add_engine_args
from ember.entrypoints.sampling_args import add_sampling_args, sampling_overrides, sampling_params_with
from ember.tokenizer import render_chat


def register(subparsers) -> None:
    parser = subparsers.add_parser("generate", help="generate text for one prompt with a local engine",
                                   description="Generate text for one prompt, streaming it to stdout.")
    parser.add_argument("prompt")
    parser.add_argument("--chat", action="store_true",
                        help="send the prompt as a user message through the model's chat template")
    add_engine_args(parser)
    add_sampling_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    engine = load_engine(args)
    prompt: str | dict = args.prompt
    if args.chat:
        text = render_chat(engine.tokenizer, [{"role": "user", "content": args.prompt}])
        prompt = {"prompt": text, "prompt_token_ids": engine.tokenizer.encode(text, add_special_tokens=False)}
    try:
        params = sampling_params_with(engine.default_sampling_params(), sampling_overrides(args))
        for piece in stream_text(engine, prompt, params):
            sys.stdout.write(piece)
            sys.stdout.flush()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    sys.stdout.write("\n")
    return 0
