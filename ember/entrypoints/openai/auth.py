"""The API key (--api-key / EMBER_API_KEY): `Authorization: Bearer <key>` on every route but a
few public ones. Deny by default: only the exact public paths pass without the key, compared
with the decoded path the router itself matches on (so no odd spelling of a route,
`//v1/models`, `/health/../v1/models`, `/%761/models`, nor any Host header, gets around the
check). The key is compared in constant time: SHA-256 digests of both, by hmac.compare_digest,
so neither the content nor the length of the key leaks through timing. The key never reaches a
log line (redact_in_logs)."""
from __future__ import annotations

import hashlib
import hmac
import json
import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from ember.entrypoints.openai.errors import error_body


class APIKeyMiddleware:
    def __init__(self, app: ASGIApp, api_key: str, public_paths: set[str]):
        self.app = app
        self._key_digest = hashlib.sha256(api_key.encode()).digest()
        self.public_paths = public_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or scope["path"] in self.public_paths or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps(error_body(401, "Invalid or missing API key: send 'Authorization: Bearer <key>'.")).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"),
                                (b"www-authenticate", b"Bearer"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                digest = hashlib.sha256(token.strip()).digest()
                return hmac.compare_digest(digest, self._key_digest) and scheme.lower() == b"bearer"
        return False


class _Redact(logging.Filter):
    def __init__(self, secret: str):
        super().__init__()
        self.secret = secret

    def _clean(self, value):
        return value.replace(self.secret, "<redacted>") if isinstance(value, str) else value

    def filter(self, record: logging.LogRecord) -> bool:
        # Arguments first: some formatters (uvicorn's access log) unpack them.
        if isinstance(record.args, tuple):
            record.args = tuple(self._clean(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: self._clean(v) for k, v in record.args.items()}
        record.msg = self._clean(record.msg)
        message = record.getMessage()
        if self.secret in message:
            record.msg, record.args = message.replace(self.secret, "<redacted>"), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and self.secret in record.exc_text:
            record.exc_text = record.exc_text.replace(self.secret, "<redacted>")
        return True


def redact_in_logs(secret: str | None) -> None:
    """Replace `secret` by <redacted> in whatever the server's log handlers write (a client
    could put it in a URL or a prompt). Call again after anything installs new handlers."""
    if not secret:
        return
    names = ("", "ember", "uvicorn", "uvicorn.error", "uvicorn.access")
    for handler in {h for name in names for h in logging.getLogger(name).handlers}:
        if not any(isinstance(f, _Redact) and f.secret == secret for f in handler.filters):
            handler.addFilter(_Redact(secret))
