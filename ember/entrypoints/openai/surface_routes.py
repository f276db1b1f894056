"""Routes vLLM users script against besides the OpenAI ones:

- POST /invocations (SageMaker's): a chat completion body (with `messages`) or a completion
  body (with `prompt`), answered as the matching /v1 route would;
- GET /load: {"server_load": N}, the generation requests in flight (streams count until they
  end), counted when the server runs with --enable-server-load-tracking (0 otherwise, as vLLM);
- GET /tokenizer_info (with --enable-tokenizer-info-endpoint): the tokenizer's configuration
  (its init kwargs, file paths left out), its class and the chat template in use."""
from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from ember.entrypoints.openai.errors import OpenAIError
from ember.entrypoints.openai.protocol import ChatCompletionRequest, CompletionRequest
from ember.entrypoints.openai.serving import ServingContext
from ember.entrypoints.openai.serving_chat import create_chat_completion
from ember.entrypoints.openai.serving_completion import create_completion

# The routes whose requests run on the engine (vLLM counts the same ones).
GENERATION_PATHS = ("/v1/completions", "/v1/chat/completions", "/invocations")
# Tokenizer settings that are paths on the server's disk, not configuration.
_FILE_KEYS = ("vocab_file", "merges_file", "tokenizer_file", "name_or_path")


class ServerLoad:
    """Generation requests in flight (--enable-server-load-tracking)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.in_flight = 0


class LoadTrackingMiddleware:
    """Counts a generation request from its arrival until its response (a whole stream) is sent."""

    def __init__(self, app: ASGIApp, load: ServerLoad):
        self.app, self.load = app, load

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        if scope["type"] != "http" or path not in GENERATION_PATHS:
            await self.app(scope, receive, send)
            return
        self.load.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.load.in_flight -= 1


def add_surface_routes(app: FastAPI, ctx: ServingContext, load: ServerLoad, tokenizer_info: bool) -> None:
    @app.post("/invocations")
    async def invocations(raw_request: Request) -> Response:
        body = await raw_request.json()
        if not isinstance(body, dict) or not ({"messages", "prompt"} & set(body)):
            raise OpenAIError("An /invocations body is a chat completion request (with `messages`) or a completion "
                              "request (with `prompt`).")
        try:
            if "messages" in body:
                return await create_chat_completion(ctx, ChatCompletionRequest.model_validate(body), raw_request)
            return await create_completion(ctx, CompletionRequest.model_validate(body), raw_request)
        except ValidationError as e:
            raise RequestValidationError(e.errors()) from None

    @app.get("/load")
    async def server_load() -> JSONResponse:
        return JSONResponse({"server_load": load.in_flight if load.enabled else 0})

    if tokenizer_info:
        @app.get("/tokenizer_info")
        async def get_tokenizer_info() -> JSONResponse:
            return JSONResponse(tokenizer_config(ctx.tokenizer, ctx.chat_template))

    if load.enabled:
        app.add_middleware(LoadTrackingMiddleware, load=load)


def tokenizer_config(tokenizer, chat_template: str | None) -> dict[str, Any]:
    """vLLM's /tokenizer_info: init kwargs made JSON-safe, `tokenizer_class`, `chat_template`."""
    config = {k: _json_safe(v) for k, v in (getattr(tokenizer, "init_kwargs", None) or {}).items()
              if k not in _FILE_KEYS}
    config["tokenizer_class"] = type(tokenizer).__name__
    template = chat_template or getattr(tokenizer, "chat_template", None)
    if template:
        config["chat_template"] = template
    return config


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)
