"""The server's life around the routes: what is let in at the door, how it shuts down, and how
it ends when the engine dies.

- At the door (AdmissionMiddleware, inside the API-key check): a body above
  --max-request-bytes gets 413 before it is read (Content-Length) or as soon as it grows past
  the limit (chunked); once shutting down, every route but the public ones gets 503 with
  Retry-After. Requests let in are counted while they are served.
- SIGTERM or SIGINT (ServerLifecycle.begin_shutdown, through EmberServer.handle_exit): stop
  admitting, let the requests in flight finish for up to --shutdown-timeout seconds, then
  abort the rest (their clients get a 503 error, in the stream when it had begun), stop the
  engine (blocks freed, executor workers stopped) and exit 0. A second signal aborts at once.
- The engine loop failing (on_engine_dead, from the engine thread): every request in flight
  has already failed with a 500 naming the cause and /health answers 503; DEAD_EXIT_GRACE_S
  later the server exits with status 1. Should a graceful exit hang, a watchdog ends the
  process (os._exit) HARD_EXIT_MARGIN_S later: never a hang, never a healthy-looking dead
  server."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import time
from typing import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ember.entrypoints.openai.errors import RETRY_AFTER_S, error_body

logger = logging.getLogger(__name__)

DEFAULT_SHUTDOWN_TIMEOUT_S = 30.0
DEAD_EXIT_GRACE_S = 2.0
HARD_EXIT_MARGIN_S = 15.0
# After aborting what was left, how long the aborted requests get to send their error.
_ABORT_FLUSH_S = 5.0


class ServerLifecycle:
    def __init__(self, shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT_S):
        self.shutdown_timeout = shutdown_timeout
        self.llm = None       # the AsyncLLM, once built
        self.server = None    # the uvicorn.Server, when run_server runs one
        self.loop: asyncio.AbstractEventLoop | None = None
        self.draining = False
        self.in_flight = 0
        self.exit_code = 0
        self._drain_task: asyncio.Task | None = None
        self._hurry = False

    # ----- engine death (called on the engine thread) -----

    def on_engine_dead(self, error: BaseException) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._engine_dead, error)

    def _engine_dead(self, error: BaseException) -> None:
        self.exit_code = 1
        if self.server is None:  # an app without a server process of its own (tests)
            return
        logger.error("The engine loop failed (%r); exiting in %.0f s", error, DEAD_EXIT_GRACE_S)
        self.loop.call_later(DEAD_EXIT_GRACE_S, self._stop_server)
        _arm_hard_exit(DEAD_EXIT_GRACE_S + HARD_EXIT_MARGIN_S, 1)

    # ----- graceful shutdown (on the event loop) -----

    def begin_shutdown(self, reason: str) -> None:
        if self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(self._drain(reason))
            _arm_hard_exit(self.shutdown_timeout + _ABORT_FLUSH_S + HARD_EXIT_MARGIN_S, 1)
        else:
            logger.info("%s again: aborting the requests in flight now", reason)
            self._hurry = True

    async def _drain(self, reason: str) -> None:
        start = time.monotonic()
        self.draining = True
        at_start = self.in_flight
        logger.info("%s: shutting down. New requests get 503; waiting up to %g s for %d in flight",
                    reason, self.shutdown_timeout, at_start)
        deadline = start + self.shutdown_timeout
        while self.in_flight and time.monotonic() < deadline and not self._hurry:
            await asyncio.sleep(0.02)
        aborted = self.in_flight
        if aborted and self.llm is not None:
            self.llm.stop_admission()
            self.llm.abort_all()
            flush_until = time.monotonic() + _ABORT_FLUSH_S
            while self.in_flight and time.monotonic() < flush_until:
                await asyncio.sleep(0.02)
        logger.info("Drained in %.2f s: %d requests in flight finished, %d aborted",
                    time.monotonic() - start, max(at_start - aborted, 0), aborted)
        self._stop_server()

    def _stop_server(self) -> None:
        if self.server is not None:
            self.server.should_exit = True


def _arm_hard_exit(after_s: float, code: int) -> None:
    def hard_exit() -> None:
        logger.error("The server did not stop within %.0f s: exiting now", after_s)
        logging.shutdown()
        os._exit(code)

    timer = threading.Timer(after_s, hard_exit)
    timer.daemon = True
    timer.start()


def make_uvicorn_server(config, lifecycle: ServerLifecycle):
    """A uvicorn.Server whose SIGTERM/SIGINT start ServerLifecycle's graceful shutdown instead
    of uvicorn's own (which closes the port at once and re-raises the signal at the end)."""
    import uvicorn

    class EmberServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame) -> None:
            loop = lifecycle.loop
            if loop is None:  # still starting: nothing in flight
                self.should_exit = True
                return
            loop.call_soon_threadsafe(lifecycle.begin_shutdown, signal.Signals(sig).name)

    server = EmberServer(config)
    lifecycle.server = server
    return server


class AdmissionMiddleware:
    """Body size limit, shutdown gate and in-flight count, for every route but `public_paths`."""

    def __init__(self, app: ASGIApp, lifecycle: ServerLifecycle, max_request_bytes: int,
                 public_paths: set[str], on_reject: Callable[[str], None]):
        self.app = app
        self.lifecycle = lifecycle
        self.max_request_bytes = max_request_bytes
        self.public_paths = public_paths
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public_paths:
            await self.app(scope, receive, send)
            return
        if self.lifecycle.draining:
            self.on_reject("shutting_down")
            await _send_error(send, 503, "The server is shutting down.", retry_after=True)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await _send_error(send, 400, "Invalid Content-Length header.")
                return
            if int(length) > self.max_request_bytes:
                await self._too_large(send)
                return
        elif b"transfer-encoding" in headers:
            body = await _read_body(receive, self.max_request_bytes)
            if body is None:
                await self._too_large(send)
                return
            receive = _replay(body, receive)
        self.lifecycle.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.lifecycle.in_flight -= 1

    async def _too_large(self, send: Send) -> None:
        self.on_reject("too_large")
        await _send_error(send, 413, f"The request body is larger than this server's limit of "
                                     f"{self.max_request_bytes} bytes (--max-request-bytes).")


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it grows past `limit` (or the client left)."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            return bytes(body)


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` that gives the body read already, then whatever comes next (the disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _send_error(send: Send, status: int, message: str, retry_after: bool = False) -> None:
    body = json.dumps(error_body(status, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    if retry_after:
        headers.append((b"retry-after", str(RETRY_AFTER_S).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
