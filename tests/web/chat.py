"""What the browser tests of the chat page share: driving the page, waiting for replies, and
server-sent event bodies for replies scripted with Playwright's `page.route`."""
from __future__ import annotations

import json
import time

from tests.web.conftest import TINY_NAME

RUNNING = "ember:num_requests_running"
GENERATED = "ember:generation_tokens_total"


def open_chat(page, server, *, wait_models: bool = True):
    page.goto(server.url + "/")
    if wait_models:
        page.wait_for_function(f"[...document.querySelectorAll('#model option')].some(o => o.value === {TINY_NAME!r})")


def set_field(page, selector: str, value: str) -> None:
    page.fill(selector, value)
    page.dispatch_event(selector, "input")


def send(page, text: str) -> None:
    page.fill("#prompt", text)
    page.press("#prompt", "Enter")


def wait_reply_done(page, count: int = 1, timeout_ms: float = 60_000) -> None:
    """Until the page shows `count` replies, the last one finished."""
    try:
        page.wait_for_function(
            "n => { const a = document.querySelectorAll('article.assistant');"
            " return a.length === n && a[n - 1].getAttribute('aria-busy') === 'false'; }",
            arg=count, timeout=timeout_ms)
    except Exception as e:
        raise AssertionError(f"no finished reply #{count}; the page shows:\n{page.inner_text('#messages')}") from e


def last_reply(page):
    return page.locator("article.assistant").last


def wait_until(condition, timeout: float = 10.0, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def chunk(delta, finish=None, usage=None) -> str:
    """One `chat.completion.chunk` event: a delta of choice 0, or (with `usage`) the usage chunk."""
    body = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 0, "model": TINY_NAME,
            "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        body["usage"] = usage
    return f"data: {json.dumps(body)}\n\n"


def fulfil_with(body: str):
    """A `page.route` handler answering with a prepared event stream."""
    return lambda route: route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)
