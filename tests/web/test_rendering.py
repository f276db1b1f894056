"""How the chat page renders replies, in a real headless browser: HTML in model output shown
as text, Markdown, the thinking block (reasoning_content or <think> tags), tool calls, and an
error event midway. The replies are scripted (Playwright's `page.route` answers the request with
prepared server-sent events), so each case is exact; the page itself comes from a real server."""
from __future__ import annotations

import json
import os

from tests.web.chat import chunk, fulfil_with, last_reply, open_chat, send, set_field, wait_reply_done
from tests.web.conftest import TINY_NAME

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


def test_think_tags_and_an_error_midway(page, tiny_server):
    """A reasoning model served without a reasoning parser: its <think> block still shows as
    thinking. An error event after the stream began shows its message beside what came."""
    events = ["<think>Pondering", " <u>this</u>.</think>", "\n\nThe answer is 42."]
    error = {"message": "The engine loop failed: boom", "type": "InternalServerError", "code": 500}
    body = "".join(chunk({"content": text}) for text in events)
    body += f"data: {json.dumps({'error': error})}\n\ndata: [DONE]\n\n"
    page.route("**/v1/chat/completions", fulfil_with(body))
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
