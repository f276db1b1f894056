"""Errors in OpenAI's JSON shape, which the `openai` client turns into its exceptions:
{"error": {"message": ..., "type": "BadRequestError", "param": ..., "code": 400}}.

Every failure a client can cause is a 4xx naming what was wrong; pydantic's validation
errors (wrong types, malformed JSON) are 400s, not FastAPI's 422."""
from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ember.engine.async_engine import EngineDeadError, EngineOverloadedError, EngineStoppingError, RequestFailedError
from ember.entrypoints.openai.protocol import ErrorInfo, ErrorResponse

logger = logging.getLogger(__name__)

# Seconds a client refused for overload (503) is told to wait before retrying.
RETRY_AFTER_S = 1

_TYPES = {400: "BadRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError",
          404: "NotFoundError", 405: "MethodNotAllowedError", 413: "RequestTooLargeError",
          422: "UnprocessableEntityError", 429: "RateLimitError", 500: "InternalServerError",
          503: "ServiceUnavailableError"}


class OpenAIError(Exception):
    def __init__(self, message: str, status: int = 400, param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message, self.status, self.param, self.headers = message, status, param, headers


def unavailable(message: str) -> OpenAIError:
    """A 503 telling the client when to try again (overload, shutdown)."""
    return OpenAIError(message, 503, headers={"Retry-After": str(RETRY_AFTER_S)})


def error_body(status: int, message: str, param: str | None = None) -> dict:
    info = ErrorInfo(message=message, type=_TYPES.get(status, "APIError"), param=param, code=status)
    return ErrorResponse(error=info).model_dump()


def error_response(status: int, message: str, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, param), status_code=status, headers=headers)


def as_openai_error(error: BaseException) -> OpenAIError:
    """What a client is told about an exception raised while serving its request."""
    if isinstance(error, OpenAIError):
        return error
    if isinstance(error, ValueError):  # invalid request: SamplingParams, the engine's checks
        return OpenAIError(str(error))
    if isinstance(error, (EngineOverloadedError, EngineStoppingError)):
        return unavailable(str(error))
    if isinstance(error, (EngineDeadError, RequestFailedError)):
        return OpenAIError(str(error), 500)
    logger.exception("Unexpected error while serving a request", exc_info=error)
    return OpenAIError(f"Internal server error: {error!r}", 500)


def validation_message(errors: list[dict]) -> tuple[str, str | None]:
    """(message, param) for pydantic's errors about a request body."""
    first = errors[0]
    if first.get("type") == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "")
        return f"Malformed JSON body: {detail}".rstrip(": "), None
    parts, params = [], []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p != "body"]
        field = ".".join(loc) or "body"
        params.append(field)
        parts.append(f"{field}: {e.get('msg', 'invalid value')}")
    return "Invalid request: " + "; ".join(dict.fromkeys(parts)), params[0]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        if request.method == "POST" and "json" not in request.headers.get("content-type", ""):
            # Bodies are read as JSON only when they say so (a guard against cross-site forms).
            return error_response(400, "Send the body as JSON, with the header 'Content-Type: application/json'.")
        message, param = validation_message(list(exc.errors()))
        return error_response(400, message, param)

    @app.exception_handler(json.JSONDecodeError)
    async def _json(request: Request, exc: json.JSONDecodeError) -> JSONResponse:
        return error_response(400, f"Malformed JSON body: {exc}")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(error_body(exc.status_code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    async def _openai(request: Request, exc: Exception) -> JSONResponse:
        error = as_openai_error(exc)
        if isinstance(exc, EngineOverloadedError):
            on_reject = getattr(request.app.state, "on_reject", None)
            if on_reject is not None:
                on_reject("queue_full")
        return error_response(error.status, error.message, error.param, error.headers)

    # Exception itself is caught last, by Starlette's outermost middleware (which re-raises it
    # for the server's log after answering).
    for kind in (OpenAIError, ValueError, EngineDeadError, EngineOverloadedError, EngineStoppingError,
                 RequestFailedError, Exception):
        app.add_exception_handler(kind, _openai)
