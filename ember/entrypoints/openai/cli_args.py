"""The server's flags (vLLM's names and defaults), on top of the engine flags. Flags of
features not built yet are accepted so that seed commands parse, and refused at startup
with a clear message: never silently ignored."""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from ember.entrypoints.engine_args import add_engine_args
from ember.entrypoints.openai.admission import DEFAULT_MAX_N, DEFAULT_MAX_QUEUED_REQUESTS, DEFAULT_MAX_REQUEST_BYTES
from ember.entrypoints.openai.lifecycle import DEFAULT_SHUTDOWN_TIMEOUT_S

# Parser names, as vLLM spells them (the parsers live in tool_parsers/ and reasoning/).
TOOL_CALL_PARSERS = ("hermes",)
REASONING_PARSERS = ("deepseek_r1", "qwen3")


@dataclass(frozen=True)
class ChatFeatures:
    """What the tool-call and reasoning flags turned on."""
    enable_auto_tool_choice: bool = False
    tool_call_parser: str | None = None
    reasoning_parser: str | None = None


@dataclass(frozen=True)
class ResponseOptions:
    """What the response-shaping flags (vLLM's) turned on."""
    return_tokens_as_token_ids: bool = False   # logprob tokens as "token_id:N" unless a request says otherwise
    enable_force_include_usage: bool = False   # a usage chunk ends every stream
    enable_prompt_tokens_details: bool = False  # usage.prompt_tokens_details.cached_tokens


def response_options(args: argparse.Namespace) -> ResponseOptions:
    return ResponseOptions(bool(getattr(args, "return_tokens_as_token_ids", False)),
                           bool(getattr(args, "enable_force_include_usage", False)),
                           bool(getattr(args, "enable_prompt_tokens_details", False)))


def make_arg_parser(parser: argparse.ArgumentParser, model_option: bool = True) -> argparse.ArgumentParser:
    add_engine_args(parser, model_option)
    group = parser.add_argument_group("server")
    group.add_argument("--host", default=None, help="address to bind (default: all interfaces)")
    group.add_argument("--port", type=int, default=8000)
    group.add_argument("--served-model-name", nargs="+", default=None,
                       help="the name(s) clients use for the model (default: the model argument)")
    group.add_argument("--uvicorn-log-level", default="info",
                       choices=["critical", "error", "warning", "info", "debug", "trace"])
    group.add_argument("--api-key", default=None,
                       help="require 'Authorization: Bearer <key>' (also read from EMBER_API_KEY)")
    group.add_argument("--chat-template", default=None, help="a Jinja chat template: a file path or the text")
    group.add_argument("--trust-request-chat-template", action="store_true",
                       help="accept a chat_template sent in a request body")
    group.add_argument("--enable-log-requests", action="store_true",
                       help="log each request's prompt (clipped), token ids and sampling parameters at INFO")
    group.add_argument("--disable-log-requests", action="store_true",
                       help="older vLLM's switch; requests are not logged unless --enable-log-requests")
    group.add_argument("--disable-log-stats", action="store_true")
    group.add_argument("--vllm-metric-names", action="store_true",
                       help="/metrics also serves every series under vLLM's names (vllm:...), for dashboards "
                            "built for vLLM")
    group.add_argument("--disable-web-ui", action="store_true", help="serve no chat page at /")
    limits = parser.add_argument_group("robustness")
    limits.add_argument("--max-queued-requests", type=_positive_int, default=DEFAULT_MAX_QUEUED_REQUESTS,
                        help="requests that may wait for the engine; beyond, new ones get 503 with Retry-After")
    limits.add_argument("--max-n", type=_positive_int, default=DEFAULT_MAX_N,
                        help="the largest n (and best_of) a request may ask for")
    limits.add_argument("--max-request-bytes", type=_positive_int, default=DEFAULT_MAX_REQUEST_BYTES,
                        help="larger request bodies get 413")
    limits.add_argument("--shutdown-timeout", type=float, default=DEFAULT_SHUTDOWN_TIMEOUT_S,
                        help="on SIGTERM/SIGINT, seconds the requests in flight get to finish before they are aborted")
    limits.add_argument("--ssl-keyfile", default=None, help="serve HTTPS with this private key (PEM)")
    limits.add_argument("--ssl-certfile", default=None, help="... and this certificate chain (PEM)")
    chat = parser.add_argument_group("tool calling and reasoning")
    chat.add_argument("--enable-auto-tool-choice", action="store_true",
                      help="let the model decide to call tools (tool_choice \"auto\"); needs --tool-call-parser")
    chat.add_argument("--tool-call-parser", default=None, metavar="{" + ",".join(TOOL_CALL_PARSERS) + "}",
                      help="how the model writes tool calls: hermes (<tool_call>{...}</tool_call>, Qwen2.5/Qwen3)")
    chat.add_argument("--reasoning-parser", default=None, metavar="{" + ",".join(REASONING_PARSERS) + "}",
                      help="split <think>...</think> into reasoning_content")
    chat.add_argument("--enable-reasoning", action="store_true",
                      help="older vLLM's switch for --reasoning-parser (which alone is enough)")
    chat.add_argument("--enable-reasoning-parser", action="store_true", help=argparse.SUPPRESS)
    surface = parser.add_argument_group("responses and endpoints (vLLM's flags)")
    surface.add_argument("--root-path", default=None,
                         help="the path prefix a proxy serves this server under (FastAPI's root_path)")
    surface.add_argument("--return-tokens-as-token-ids", action="store_true",
                         help="write logprob tokens as 'token_id:N' (a request's return_tokens_as_token_ids wins)")
    surface.add_argument("--enable-force-include-usage", action="store_true",
                         help="end every stream with a usage chunk, as if stream_options.include_usage were set")
    surface.add_argument("--enable-prompt-tokens-details", action="store_true",
                         help="report usage.prompt_tokens_details.cached_tokens (prompt tokens served from the "
                              "prefix cache)")
    surface.add_argument("--enable-server-load-tracking", action="store_true",
                         help="count the requests in flight, served at GET /load")
    surface.add_argument("--enable-tokenizer-info-endpoint", action="store_true",
                         help="serve GET /tokenizer_info (the tokenizer's configuration, chat template included)")
    return parser


def check_supported(args: argparse.Namespace) -> None:
    chat_features(args)
    ssl = [getattr(args, "ssl_keyfile", None), getattr(args, "ssl_certfile", None)]
    if any(ssl) and not all(ssl):
        raise ValueError("--ssl-keyfile and --ssl-certfile go together: give both, or neither.")
    for path in filter(None, ssl):
        if not os.path.isfile(path):
            raise ValueError(f"{path}: no such file (--ssl-keyfile/--ssl-certfile).")
    if getattr(args, "shutdown_timeout", 0) < 0:
        raise ValueError("--shutdown-timeout must be >= 0.")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def chat_features(args: argparse.Namespace) -> ChatFeatures:
    """The tool-call and reasoning flags, checked (ValueError names the flag)."""
    tool_parser = getattr(args, "tool_call_parser", None)
    reasoning = getattr(args, "reasoning_parser", None)
    if tool_parser is not None and tool_parser not in TOOL_CALL_PARSERS:
        raise ValueError(f"--tool-call-parser {tool_parser!r} is not available; choose from "
                         f"{', '.join(TOOL_CALL_PARSERS)}.")
    if getattr(args, "enable_auto_tool_choice", False) and tool_parser is None:
        raise ValueError("--enable-auto-tool-choice needs --tool-call-parser (e.g. hermes).")
    if reasoning is not None and reasoning not in REASONING_PARSERS:
        raise ValueError(f"--reasoning-parser {reasoning!r} is not available; choose from "
                         f"{', '.join(REASONING_PARSERS)}.")
    if (getattr(args, "enable_reasoning", False) or getattr(args, "enable_reasoning_parser", False)) \
            and reasoning is None:
        raise ValueError("--enable-reasoning needs --reasoning-parser (deepseek_r1 or qwen3).")
    return ChatFeatures(bool(getattr(args, "enable_auto_tool_choice", False)), tool_parser, reasoning)
