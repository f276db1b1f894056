"""`ember serve [MODEL] [flags]`: the OpenAI-compatible server."""
from __future__ import annotations

import argparse

from ember.entrypoints.engine_args import DEFAULT_MODEL_NAME
from ember.entrypoints.openai.cli_args import make_arg_parser


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="start the OpenAI-compatible server",
        description="Start the OpenAI-compatible server (vLLM's flags and defaults).")
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_tag", nargs="?", default=None, metavar="MODEL",
                        help=f"model directory, GGUF file, or hub id (default: {DEFAULT_MODEL_NAME}, embedded)")
    make_arg_parser(parser)


def run(args: argparse.Namespace, hooks=None) -> None:
    """`hooks`: an api_server.ServerHooks, for callers that embed the server (the tests)."""
    from ember.engine.core_prestart import discard_prestarted_cores, has_prestarted_core, prestart_core

    if not has_prestarted_core():  # the `ember` command starts it before its own imports
        prestart_core()
    try:
        from ember.entrypoints.openai.api_server import run_server

        if args.model_tag is not None:
            args.model = args.model_tag
        run_server(args, hooks)
    finally:
        discard_prestarted_cores()
