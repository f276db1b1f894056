"""The OpenAI-compatible HTTP server: FastAPI routes over one AsyncLLM, run by uvicorn.

    ember serve [MODEL] [flags]
    python -m ember.entrypoints.openai.api_server --model MODEL [flags]
"""
from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import Match, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from ember import __version__
from ember.chat_template_sandbox import TemplateSandbox
from ember.dependencies import MissingDependency
from ember.engine.async_engine import AsyncLLM
from ember.engine.core import StepHook
from ember.engine.core_client import EngineCoreStartError
from ember.entrypoints.engine_args import engine_config_from_args
from ember.entrypoints.logging_config import configure_logging
from ember.entrypoints.openai import cli_args
from ember.entrypoints.openai.admission import DEFAULT_MAX_REQUEST_BYTES
from ember.entrypoints.openai.auth import APIKeyMiddleware, redact_in_logs
from ember.entrypoints.openai.errors import error_response, install_error_handlers
from ember.entrypoints.openai.lifecycle import AdmissionMiddleware, ServerLifecycle, make_uvicorn_server
from ember.entrypoints.openai.metrics import CONTENT_TYPE, ServerMetrics
from ember.entrypoints.openai.protocol import (ChatCompletionRequest, CompletionRequest, DetokenizeRequest,
                                               ModelCard, ModelList, ModelPermission, TokenizeRequest)
from ember.entrypoints.openai.serving import ServingContext
from ember.entrypoints.openai.serving_chat import create_chat_completion
from ember.entrypoints.openai.serving_completion import create_completion
from ember.entrypoints.openai.serving_tokenization import detokenize, tokenize
from ember.entrypoints.openai.surface_routes import ServerLoad, add_surface_routes
from ember.structured.params import GuidedDecodingParams
from ember.tokenizer import read_chat_template, use_template_sandbox

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
# Reachable without the API key: probes, and the chat page (which asks for the key itself).
_PUBLIC_PATHS = {"/health", "/metrics", "/version", "/load"}


class _PageFiles(StaticFiles):
    """The chat page's files. Their mount covers every path, so a method other than GET or HEAD
    ends here both on a route of another method (405, as without the page) and on a path no
    route has (404; StaticFiles alone would answer 405)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD"):
            routes = [r for r in scope["app"].routes if not isinstance(r, Mount)]
            if any(r.matches(scope)[0] == Match.PARTIAL for r in routes):
                raise HTTPException(status_code=405, detail="Method Not Allowed")
            raise HTTPException(status_code=404, detail="Not Found")
        await super().__call__(scope, receive, send)


def build_app(ctx: ServingContext, metrics: ServerMetrics, api_key: str | None = None,
              web_ui: bool = True, lifecycle: ServerLifecycle | None = None,
              max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
              template_sandbox: TemplateSandbox | None = None, load: ServerLoad | None = None,
              tokenizer_info: bool = False, root_path: str | None = None) -> FastAPI:
    llm = ctx.llm
    lifecycle = lifecycle or ServerLifecycle()
    lifecycle.llm = llm

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        lifecycle.loop = asyncio.get_running_loop()
        yield
        llm.shutdown()
        if template_sandbox is not None:
            template_sandbox.close()
        left = llm.snapshot
        logger.info("Engine stopped: %d requests left, %d KV cache blocks in use",
                    left.num_running + left.num_waiting, left.kv_blocks_used)

    # root_path (--root-path): routes answer both under the prefix and, behind a proxy that
    # strips it, without.
    app = FastAPI(title="Ember", version=__version__, lifespan=lifespan, root_path=root_path or "")
    app.state.ctx = ctx
    app.state.lifecycle = lifecycle
    app.state.on_reject = metrics.reject
    install_error_handlers(app)

    @app.get("/health")
    async def health() -> Response:
        if llm.is_dead:
            return error_response(503, f"The engine is dead: {llm.dead_error!r}")
        if lifecycle.draining:
            return error_response(503, "The server is shutting down.")
        return Response(status_code=200)

    @app.get("/version")
    async def version() -> dict:
        return {"version": __version__}

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/v1/models", response_model=ModelList)
    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id=name, root=name, max_model_len=ctx.max_model_len,
                                         permission=[ModelPermission(id=f"modelperm-{name}")])
                               for name in ctx.model_names])

    @app.post("/v1/completions")
    async def completions(request: CompletionRequest, raw_request: Request) -> Response:
        return await create_completion(ctx, request, raw_request)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: ChatCompletionRequest, raw_request: Request) -> Response:
        return await create_chat_completion(ctx, request, raw_request)

    @app.post("/tokenize")
    async def tokenize_route(request: TokenizeRequest) -> Response:
        return Response(tokenize(ctx, request).model_dump_json(), media_type="application/json")

    @app.post("/detokenize")
    async def detokenize_route(request: DetokenizeRequest) -> Response:
        return Response(detokenize(ctx, request).model_dump_json(), media_type="application/json")

    add_surface_routes(app, ctx, load or ServerLoad(enabled=False), tokenizer_info)
    public = set(_PUBLIC_PATHS)
    if web_ui and (WEB_DIR / "index.html").is_file():
        @app.get("/", include_in_schema=False)
        async def chat_page() -> FileResponse:
            return FileResponse(WEB_DIR / "index.html")

        # The page's own files (scripts, styles) sit beside it, reachable by relative links.
        app.mount("/", _PageFiles(directory=WEB_DIR), name="web")
        public |= {"/"} | {"/" + f.name for f in WEB_DIR.iterdir() if f.is_file() and f.suffix != ".py"}
    if root_path:  # the router strips the prefix: the public routes stay public under it
        public |= {root_path.rstrip("/") + p for p in public}
    # The last added runs first: the key is checked before anything else looks at a request.
    app.add_middleware(AdmissionMiddleware, lifecycle=lifecycle, max_request_bytes=max_request_bytes,
                       public_paths=public, on_reject=metrics.reject)
    if api_key:
        app.add_middleware(APIKeyMiddleware, api_key=api_key, public_paths=public)
    return app


@dataclass(frozen=True)
class ServerHooks:
    """What a caller that embeds the server (the tests) may change in it; nothing reads these
    from the environment."""
    # Runs in the engine core before each step (see EngineCore): faults are injected here.
    before_step: StepHook | None = None
    # A rendered chat prompt -> the constraint its output must follow instead of any other
    # (None: the request's own); scripted model outputs come through here.
    chat_constraint: Callable[[str], GuidedDecodingParams | None] | None = None


def create_app(args: argparse.Namespace, hooks: ServerHooks = ServerHooks()) -> FastAPI:
    """Check the flags, start the engine core and build the app. Raises ValueError for a bad
    flag before anything heavy is loaded."""
    cli_args.check_supported(args)
    config = engine_config_from_args(args)
    chat_template = read_chat_template(args.chat_template)
    api_key = api_key_of(args)
    # Chat templates render in a child process with time, memory and output limits; it starts
    # now so that its imports overlap the engine's loading.
    sandbox = TemplateSandbox(max_output_chars=4 * args.max_request_bytes)
    sandbox.start()
    metrics = ServerMetrics(config.served_model_name[0], vllm_names=args.vllm_metric_names)
    lifecycle = ServerLifecycle(args.shutdown_timeout)
    try:
        llm = AsyncLLM(config, log_stats=not args.disable_log_stats, on_request_finished=metrics.on_request_finished,
                       max_queued_requests=args.max_queued_requests, on_dead=lifecycle.on_engine_dead,
                       before_step=hooks.before_step)
    except BaseException:
        sandbox.close()
        raise
    if llm.tokenizer is not None:
        use_template_sandbox(llm.tokenizer, sandbox)
    metrics.watch(llm)
    ctx = ServingContext.for_engine(llm, chat_template=chat_template,
                                    trust_request_chat_template=args.trust_request_chat_template,
                                    log_requests=args.enable_log_requests,
                                    chat_features=cli_args.chat_features(args), max_n=args.max_n,
                                    response_options=cli_args.response_options(args),
                                    chat_constraint=hooks.chat_constraint)
    return build_app(ctx, metrics, api_key, web_ui=not args.disable_web_ui, lifecycle=lifecycle,
                     max_request_bytes=args.max_request_bytes, template_sandbox=sandbox,
                     load=ServerLoad(enabled=args.enable_server_load_tracking),
                     tokenizer_info=args.enable_tokenizer_info_endpoint, root_path=args.root_path)


def api_key_of(args: argparse.Namespace) -> str | None:
    return args.api_key or os.environ.get("EMBER_API_KEY") or os.environ.get("VLLM_API_KEY")


def run_server(args: argparse.Namespace, hooks: ServerHooks | None = None) -> None:
    """Serve until SIGTERM/SIGINT (exit 0 once drained, see lifecycle.py) or until the engine
    fails (exit 1)."""
    import uvicorn

    configure_logging()
    redact_in_logs(api_key_of(args))
    # While the engine loads nothing is in flight: a SIGTERM just ends the process, cleanly.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        app = create_app(args, hooks or ServerHooks())
    except (ValueError, MissingDependency, EngineCoreStartError) as e:
        raise SystemExit(f"error: {e}") from None
    host = args.host or "0.0.0.0"
    scheme = "https" if args.ssl_certfile else "http"
    logger.info("Serving %s on %s://%s:%d", ", ".join(app.state.ctx.model_names), scheme, host, args.port)
    config = uvicorn.Config(app, host=host, port=args.port, log_level=args.uvicorn_log_level, timeout_keep_alive=5,
                            timeout_graceful_shutdown=5, ssl_keyfile=args.ssl_keyfile, ssl_certfile=args.ssl_certfile)
    redact_in_logs(api_key_of(args))  # uvicorn.Config set up its own log handlers
    lifecycle = app.state.lifecycle
    make_uvicorn_server(config, lifecycle).run()
    logger.info("Exiting with status %d", lifecycle.exit_code)
    # The engine, its workers and the template sandbox are stopped already: run the exit
    # handlers, then skip the interpreter's teardown of torch's state (seconds, for nothing).
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(lifecycle.exit_code)


def main(argv: list[str] | None = None) -> None:
    parser = cli_args.make_arg_parser(argparse.ArgumentParser(
        prog="python -m ember.entrypoints.openai.api_server", description="Ember's OpenAI-compatible server."))
    run_server(parser.parse_args(argv))


if __name__ == "__main__":
    main()
