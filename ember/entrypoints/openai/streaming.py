"""Server-sent events as OpenAI streams them, shared by completions and chat: `data: {json}`
events, an error event if the request fails midway, and `data: [DONE]` last, always. The
engine's outputs are cumulative; ChoiceProgress turns them into deltas."""
from __future__ import annotations

import json
from typing import AsyncIterator, Callable

from pydantic import BaseModel
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ember.entrypoints.openai.errors import as_openai_error, error_body
from ember.outputs import CompletionOutput

DONE = "data: [DONE]\n\n"


def sse(event: BaseModel | dict) -> str:
    if isinstance(event, BaseModel):
        return f"data: {event.model_dump_json()}\n\n"
    return f"data: {json.dumps(event)}\n\n"


class SSEResponse(StreamingResponse):
    """Streams `events` and runs `on_close` however the response ends: done, the client gone,
    or an error. That is what aborts the engine requests behind a dropped stream."""

    def __init__(self, events: AsyncIterator[str], on_close: Callable[[], None]):
        super().__init__(_framed(events), media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


async def _framed(events: AsyncIterator[str]) -> AsyncIterator[str]:
    try:
        async for event in events:
            yield event
    except Exception as e:  # noqa: BLE001 - the status line is sent: report it in the stream
        error = as_openai_error(e)
        yield sse(error_body(error.status, error.message, error.param))
    yield DONE


class ChoiceProgress:
    """What of one choice's cumulative output was already sent."""

    def __init__(self) -> None:
        self.sent_chars = 0
        self.sent_logprobs = 0
        self.finished = False

    def advance(self, output: CompletionOutput) -> tuple[str, list, str | None]:
        """(new text, new logprob entries, finish_reason once finished)."""
        text = output.text[self.sent_chars:]
        self.sent_chars = len(output.text)
        logprobs = (output.logprobs or [])[self.sent_logprobs:]
        self.sent_logprobs += len(logprobs)
        self.finished = output.finish_reason is not None
        return text, logprobs, output.finish_reason
