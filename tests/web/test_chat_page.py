"""The chat page in a real headless browser against real servers: a streamed reply, Stop
aborting the request on the server, HTML in a reply shown as text, Markdown, thinking and tool
calls, conversations kept across a reload, the API-key flow, and the server's error messages."""
from __future__ import annotations

import json
import os
import re
import time

from tests.server.launcher import metric
from tests.web.conftest import API_KEY, TINY_NAME

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


def test_streamed_reply(page, tiny_server, artifacts):
    open_chat(page, tiny_server)
    assert page.title() == "Ember chat"
    assert page.input_value("#model") == TINY_NAME
    set_field(page, "#max-tokens", "200")
    # Shift+Enter is a new line, not a send.
    page.click("#prompt")
    page.keyboard.type("Hello")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("world")
    assert page.input_value("#prompt") == "Hello\nworld"
    assert page.locator("article").count() == 0
    # Record the reply's length at every change of the conversation view while it streams.
    page.evaluate("""() => {
        window.__lengths = [];
        new MutationObserver(() => {
            const replies = document.querySelectorAll('article.assistant .markdown');
            if (replies.length) window.__lengths.push(replies[replies.length - 1].textContent.length);
        }).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
    }""")
    page.keyboard.press("Enter")
    page.wait_for_selector("#stop", state="visible")
    wait_reply_done(page)
    assert page.input_value("#prompt") == ""
    assert page.locator("article.user .user-text").inner_text() == "Hello\nworld"
    reply = last_reply(page)
    assert reply.locator(".model-name").inner_text() == TINY_NAME
    assert reply.locator(".markdown").inner_text().strip(), reply.inner_text()
    lengths = [n for n in page.evaluate("window.__lengths") if n > 0]
    assert len(set(lengths)) >= 3, f"the reply did not stream in: {lengths}"
    assert lengths == sorted(lengths)
    foot = reply.locator(".message-foot").inner_text()
    assert re.fullmatch(r"\d+\.\d\d s to first token · \d+\.\d tokens/s · 200 tokens · cut at max_tokens",
                        foot), foot
    assert page.is_visible("#send") and not page.is_visible("#stop")
    assert not page.is_disabled("#regenerate")
    assert page.locator("#conversation-list li").count() == 1
    assert page.inner_text("#chat-title") == "Hello world"
    page.screenshot(path=os.path.join(artifacts, "web-ui-streamed.png"))


def test_stop_aborts_the_request_on_the_server(page, tiny_server):
    open_chat(page, tiny_server)
    set_field(page, "#max-tokens", "3000")  # ~15 s of tokens for the tiny model on a CPU
    send(page, "Tell me a long story.")
    page.wait_for_function("document.querySelector('article.assistant .markdown').textContent.length > 20")
    assert wait_until(lambda: metric(tiny_server.url, RUNNING) == 1)
    page.click("#stop")
    assert wait_until(lambda: metric(tiny_server.url, RUNNING) == 0, timeout=5), "the request still runs"
    generated = metric(tiny_server.url, GENERATED)
    time.sleep(0.5)
    assert metric(tiny_server.url, GENERATED) == generated, "tokens are still being generated"
    wait_reply_done(page)
    assert last_reply(page).locator(".message-foot").inner_text().endswith("stopped")
    assert page.is_visible("#send") and not page.is_visible("#stop")
    # The partial reply is kept (and saved): reloading shows it.
    kept = last_reply(page).locator(".markdown").inner_text()
    assert kept
    page.reload()
    assert last_reply(page).locator(".markdown").inner_text() == kept


SCRIPTED_REASONING = ["The user wants HTML. ", "Careful: <b>tags</b> are text."]
SCRIPTED_CONTENT = [
    "Here is an image: <im", 'g src=x onerror="window.__pwned=1"> and a script: <script>window.__pwned=2</scr',
    "ipt> and **bold** with `inline <code>`.\n\n", "- one\n- two\n\n", "```html\n<script>alert(1)</script>\n", "```\n",
    "| a | b |\n|---|---|\n| <i>x</i> | [link](javascript:alert(1)) |\n",
]
SCRIPTED_TOOL_CALLS = [
    [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}],
    [{"index": 0, "function": {"arguments": '{"city": '}}],
    [{"index": 0, "function": {"arguments": '"<Paris>"}'}}],
]


def scripted_stream() -> str:
    def chunk(delta, finish=None, usage=None):
        body = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 0, "model": TINY_NAME,
                "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
        if usage:
            body["usage"] = usage
        return f"data: {json.dumps(body)}\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"reasoning_content": text}) for text in SCRIPTED_REASONING]
    events += [chunk({"content": text}) for text in SCRIPTED_CONTENT]
    events += [chunk({"tool_calls": calls}) for calls in SCRIPTED_TOOL_CALLS]
    events.append(chunk({}, finish="tool_calls"))
    events.append(chunk(None, usage={"prompt_tokens": 9, "completion_tokens": 42, "total_tokens": 51}))
    return "".join(events) + "data: [DONE]\n\n"


def test_scripted_reply_with_html_is_shown_as_text(page, tiny_server, artifacts):
    requests = []

    def fulfil(route):
        requests.append(route.request.post_data_json)
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=scripted_stream())

    page.route("**/v1/chat/completions", fulfil)
    open_chat(page, tiny_server)
    set_field(page, "#system", "You are terse.")
    set_field(page, "#temperature", "0.7")
    set_field(page, "#top-p", "0.8")
    set_field(page, "#max-tokens", "256")
    send(page, "Show me some <b>HTML</b>")
    wait_reply_done(page)

    body = requests[0]
    assert body["stream"] is True and body["model"] == TINY_NAME
    assert body["messages"] == [{"role": "system", "content": "You are terse."},
                                {"role": "user", "content": "Show me some <b>HTML</b>"}]
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.7, 0.8, 256)

    messages = page.locator("#messages")
    assert page.evaluate("window.__pwned") is None
    for tag in ("img", "script", "b", "i"):
        assert messages.locator(tag).count() == 0, f"a <{tag}> element was created from the reply"
    assert page.evaluate("document.querySelectorAll('#messages [onerror]').length") == 0
    reply = last_reply(page)
    text = reply.locator(".markdown").inner_text()
    assert ('Here is an image: <img src=x onerror="window.__pwned=1"> and a script: '
            '<script>window.__pwned=2</script>') in text
    assert page.locator("article.user .user-text").inner_text() == "Show me some <b>HTML</b>"
    # Markdown: strong, inline code, a list, a code block, a table; the javascript: link is not a link.
    assert reply.locator(".markdown strong").inner_text() == "bold"
    assert reply.locator(".markdown p code").inner_text() == "inline <code>"
    assert reply.locator(".markdown ul li").all_inner_texts() == ["one", "two"]
    assert reply.locator(".code-block code.language-html").inner_text() == "<script>alert(1)</script>"
    assert reply.locator("td").all_inner_texts() == ["<i>x</i>", "[link](javascript:alert(1))"]
    assert reply.locator("a").count() == 0
    # Thinking: a collapsible block, closed once the answer came, that opens on a click.
    thinking = reply.locator("details.thinking")
    assert thinking.locator("summary").inner_text() == "Thinking"
    assert not thinking.evaluate("d => d.open")
    thinking.locator("summary").click()
    assert thinking.locator(".thinking-body").inner_text() == "".join(SCRIPTED_REASONING)
    # The tool call, its arguments assembled from the deltas.
    call = reply.locator(".tool-call")
    assert call.locator(".tool-call-name").inner_text() == "get_weather"
    assert json.loads(call.locator("pre").inner_text()) == {"city": "<Paris>"}
    assert reply.locator(".message-foot").inner_text().endswith("42 tokens")
    page.screenshot(path=os.path.join(artifacts, "web-ui.png"))
    # Every control has an accessible name (its label, text or aria-label).
    unnamed = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea, button')]
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
        .map(e => e.outerHTML)""")
    assert unnamed == []

    # The next request carries the reply (content and tool call) as history, not the thinking.
    send(page, "Thanks")
    wait_reply_done(page, 2)
    history = requests[1]["messages"]
    assert history[2]["role"] == "assistant" and history[2]["content"] == "".join(SCRIPTED_CONTENT)
    assert history[2]["tool_calls"] == [{"id": "call_1", "type": "function",
                                         "function": {"name": "get_weather", "arguments": '{"city": "<Paris>"}'}}]
    assert history[3] == {"role": "user", "content": "Thanks"}


def test_conversations_survive_a_reload(page, tiny_server):
    open_chat(page, tiny_server)
    set_field(page, "#max-tokens", "8")
    set_field(page, "#system", "Be brief.")
    send(page, "First question")
    wait_reply_done(page)
    first_reply = last_reply(page).locator(".markdown").inner_text()
    first_foot = last_reply(page).locator(".message-foot").inner_text()

    page.reload()
    page.wait_for_selector("article.assistant")
    assert page.locator("article.user .user-text").inner_text() == "First question"
    assert last_reply(page).locator(".markdown").inner_text() == first_reply
    assert last_reply(page).locator(".message-foot").inner_text() == first_foot
    assert page.input_value("#system") == "Be brief."
    assert page.input_value("#max-tokens") == "8"
    assert page.locator("#conversation-list .conversation").all_inner_texts() == ["First question"]

    # Regenerate replaces the last answer with a new request.
    with page.expect_request("**/v1/chat/completions"):
        page.click("#regenerate")
    wait_reply_done(page)
    assert page.locator("article.assistant").count() == 1

    # A new chat starts empty; the old one stays in the list and comes back.
    page.click("#new-chat")
    assert page.locator("article").count() == 0 and page.is_visible("#empty")
    send(page, "Second question")
    wait_reply_done(page)
    assert page.locator("#conversation-list .conversation").all_inner_texts() == ["Second question", "First question"]
    page.reload()
    page.wait_for_selector("article.assistant")
    assert page.locator("article.user .user-text").inner_text() == "Second question"
    page.locator("#conversation-list .conversation", has_text="First question").click()
    assert page.locator("article.user .user-text").inner_text() == "First question"
    assert page.input_value("#system") == "Be brief."
    page.click("#conversation-list li.current .delete")
    assert page.locator("#conversation-list .conversation").all_inner_texts() == ["Second question"]
    assert page.locator("article").count() == 0


def test_server_error_message_is_shown(page, tiny_server):
    open_chat(page, tiny_server)
    set_field(page, "#max-tokens", "100000")
    send(page, "Hi")
    wait_reply_done(page)
    error = last_reply(page).locator(".error[role=alert]")
    assert re.search(r"maximum context length is 4096 tokens", error.inner_text()), error.inner_text()
    assert page.is_visible("#send")


def test_api_key_flow(page, keyed_server):
    open_chat(page, keyed_server, wait_models=False)
    dialog = page.locator("#key-dialog")
    dialog.wait_for(state="visible")
    assert "API key" in page.inner_text("#key-message")
    assert page.locator("#model option").count() == 0
    page.fill("#key-input", "wrong-key")
    page.press("#key-input", "Enter")
    page.wait_for_function("document.getElementById('key-message').textContent.includes('refused')")
    assert dialog.is_visible()
    page.fill("#key-input", API_KEY)
    page.click("#key-save")
    page.wait_for_function(f"document.querySelector('#model').value === {TINY_NAME!r}")
    assert not dialog.is_visible()
    assert page.input_value("#api-key") == API_KEY
    set_field(page, "#max-tokens", "8")
    send(page, "Hello")
    wait_reply_done(page)
    reply = last_reply(page)
    assert reply.locator(".error").is_hidden()
    assert reply.locator(".message-foot").inner_text().endswith("8 tokens · cut at max_tokens")
    # The key is remembered: a reload asks for nothing.
    page.reload()
    page.wait_for_function(f"document.querySelector('#model').value === {TINY_NAME!r}")
    assert not dialog.is_visible()
    # A key the server stops accepting: the send fails with its message, the dialog asks, the reply is retried.
    page.evaluate("localStorage.setItem('ember.apiKey', JSON.stringify('stale-key'))")
    page.reload()
    dialog.wait_for(state="visible")
    page.click("#key-dialog button[value=cancel]")
    send(page, "Again")
    wait_reply_done(page, 2)
    assert "Invalid or missing API key" in last_reply(page).locator(".error").inner_text()
    dialog.wait_for(state="visible")
    page.fill("#key-input", API_KEY)
    page.click("#key-save")
    page.wait_for_function("() => { const a = document.querySelectorAll('article.assistant');"
                           " return a.length === 2 && a[1].getAttribute('aria-busy') === 'false'"
                           " && !a[1].querySelector('.error:not([hidden])'); }")


def test_think_tags_and_an_error_midway(page, tiny_server):
    """A reasoning model served without a reasoning parser: its <think> block still shows as
    thinking. An error event after the stream began shows its message beside what came."""
    events = ["<think>Pondering", " <u>this</u>.</think>", "\n\nThe answer is 42."]
    body = "".join(f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': t}}]})}\n\n" for t in events)
    error = {"message": "The engine loop failed: boom", "type": "InternalServerError", "code": 500}
    body += f"data: {json.dumps({'error': error})}\n\n"
    body += "data: [DONE]\n\n"
    page.route("**/v1/chat/completions",
               lambda route: route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body))
    open_chat(page, tiny_server)
    send(page, "Question")
    wait_reply_done(page)
    reply = last_reply(page)
    assert reply.locator("details.thinking .thinking-body").text_content() == "Pondering <u>this</u>."
    assert reply.locator(".markdown").inner_text() == "The answer is 42."
    assert reply.locator(".error").inner_text() == "Error: The engine loop failed: boom"
    assert page.locator("#messages u").count() == 0


MARKDOWN = """# Title
Some *em*, __strong__, ~~gone~~, snake_case_name, 2 * 3 * 4 and a\\*literal\\*.
A second line with https://example.com/a_(b) and <https://example.org>.

> quoted **text**
> - in a list

1. first
2. second
   - nested one
   - nested two
3. third

5) five
6) six

***

[ok](https://example.com "title") [bad](javascript:alert(1)) ![pic](https://example.com/p.png)

```python
def f():
    return "<b>"
```

```
still streaming <i>"""


def test_markdown_structure(page, tiny_server):
    open_chat(page, tiny_server)
    tree = page.evaluate("""source => {
        const box = document.createElement('div');
        box.appendChild(window.EmberMarkdown.render(source));
        const shape = node => node.nodeType === 3 ? node.textContent
            : [node.tagName.toLowerCase(), ...[...node.childNodes].map(shape)];
        return {html: box.innerHTML, shape: [...box.childNodes].map(shape)};
    }""", MARKDOWN)
    shape = tree["shape"]
    assert shape[0] == ["h1", "Title"]
    assert shape[1] == ["p", "Some ", ["em", "em"], ", ", ["strong", "strong"], ", ", ["del", "gone"],
                        ", snake_case_name, 2 * 3 * 4 and a*literal*.\nA second line with ",
                        ["a", "https://example.com/a_(b)"], " and ", ["a", "https://example.org"], "."]
    assert shape[2] == ["blockquote", ["p", "quoted ", ["strong", "text"]], ["ul", ["li", "in a list"]]]
    assert shape[3] == ["ol", ["li", "first"], ["li", "second", ["ul", ["li", "nested one"], ["li", "nested two"]]],
                        ["li", "third"]]
    assert shape[4][0] == "ol" and 'start="5"' in tree["html"]
    assert shape[5] == ["hr"]
    assert shape[6] == ["p", ["a", "ok"], " [bad](javascript:alert(1)) ", ["a", "[image: pic]"]]
    assert 'href="https://example.com/"' in tree["html"] and "javascript:" not in tree["html"].split("[bad]")[0]
    assert "<img" not in tree["html"] and "<i>" not in tree["html"] and "<b>" not in tree["html"]
    python = shape[7]
    assert python[0] == "div" and python[2] == ["pre", ["code", 'def f():\n    return "<b>"']]
    assert shape[8][2] == ["pre", ["code", 'still streaming <i>']]  # an unclosed fence, mid-stream
    assert page.evaluate("window.EmberMarkdown.render('>'.repeat(5000) + ' deep').childNodes.length") == 1


def test_two_tabs_stay_in_step(page, tiny_server):
    page.context.route("**/v1/chat/completions", lambda route: route.fulfill(
        status=200, headers={"Content-Type": "text/event-stream"}, body=scripted_stream()))
    open_chat(page, tiny_server)
    other = page.context.new_page()
    open_chat(other, tiny_server)
    send(page, "From tab one")
    wait_reply_done(page)
    other.locator("#conversation-list .conversation", has_text="From tab one").click()
    assert other.locator("article.user .user-text").inner_text() == "From tab one"
    other.click("#conversation-list li.current .delete")
    page.wait_for_function("document.querySelectorAll('#conversation-list li').length === 0")
    assert page.locator("article").count() == 0
