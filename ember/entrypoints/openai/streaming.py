"""Server-sent events as OpenAI streams them, shared by completions and chat: `data: {json}`
events, an error event if the request fails midway, and `data: [DONE]` last, always. The
engine sends streams delta outputs; ChoiceProgress keeps what a stream needs of the whole."""
from __future__ import annotations

import json
from typing import AsyncIterator, Callable

from pydantic import BaseModel
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ember.entrypoints.openai.errors import as_openai_error, error_body
from ember.entrypoints.openai.protocol import UsageInfo
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
    """One streamed choice. Streams get delta outputs (only what is new each step); this keeps
    what the stream needs of the whole: the text so far (for parsers that read all of it), the
    number of tokens (for usage) and whether the choice finished."""

    def __init__(self) -> None:
        self.text = ""
        self.num_tokens = 0
        self.finished = False

    def advance(self, delta: CompletionOutput) -> tuple[str, list, str | None]:
        """(new text, new logprob entries, finish_reason once finished)."""
        self.text += delta.text
        self.num_tokens += len(delta.token_ids)
        self.finished = delta.finish_reason is not None
        return delta.text, delta.logprobs or [], delta.finish_reason


def streamed_usage(prompt_lengths: list[int], choices) -> UsageInfo:
    """Usage of a streamed request: its prompts' tokens and every choice's tokens so far."""
    prompt = sum(prompt_lengths)
    completion = sum(c.num_tokens for c in choices)
    return UsageInfo(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
