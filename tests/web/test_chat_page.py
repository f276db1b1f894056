"""The chat page in a real headless browser against real servers: a streamed reply with its
numbers, Stop aborting the request on the server, conversations kept across a reload, regenerate
and new chat, the server's error messages, the API-key flow, and nothing fetched from elsewhere.
How replies render (HTML as text, Markdown, thinking, tool calls) is in test_rendering.py."""
from __future__ import annotations

import os
import re

import httpx

from ember.entrypoints.openai.api_server import WEB_DIR
from tests.server.launcher import metric
from tests.web.chat import (GENERATED, RUNNING, chunk, fulfil_with, last_reply, open_chat, send, set_field,
                            wait_reply_done, wait_until)
from tests.web.conftest import API_KEY, TINY_NAME


# Hands the page each server-sent event of a chat stream on its own, a few milliseconds apart, as
# a slow network would: the test then sees how the page renders a stream, however fast the server
# generated it.
PACE_EVENTS = r"""(() => {
  const realFetch = window.fetch;
  window.fetch = async (...args) => {
    const response = await realFetch(...args);
    if (!(response.headers.get("content-type") || "").includes("text/event-stream")) return response;
    const reader = response.body.getReader();
    const decoder = new TextDecoder(), encoder = new TextEncoder();
    let events = [];
    const paced = new ReadableStream({
      async pull(controller) {
        while (!events.length) {
          const { done, value } = await reader.read();
          if (done) { controller.close(); return; }
          events = decoder.decode(value, { stream: true }).split(/(?<=\n\n)/).filter(e => e);
        }
        await new Promise(resolve => setTimeout(resolve, 5));
        controller.enqueue(encoder.encode(events.shift()));
      },
      cancel(reason) { return reader.cancel(reason); },
    });
    return new Response(paced, { status: response.status, headers: response.headers });
  };
})();"""


def test_streamed_reply(page, tiny_server, artifacts):
    page.add_init_script(PACE_EVENTS)
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
    assert wait_until(lambda: metric(tiny_server.url, RUNNING) == 0), "the request still runs"
    # Another request of 5 tokens: the engine steps on, and only those 5 tokens are added.
    generated = metric(tiny_server.url, GENERATED)
    more = httpx.post(tiny_server.url + "/v1/completions", timeout=60, json={
        "model": TINY_NAME, "prompt": "More", "max_tokens": 5, "ignore_eos": True})
    assert more.json()["usage"]["completion_tokens"] == 5, more.text
    assert wait_until(lambda: metric(tiny_server.url, GENERATED) >= generated + 5)
    assert metric(tiny_server.url, GENERATED) == generated + 5, "the stopped request still generates"
    wait_reply_done(page)
    assert last_reply(page).locator(".message-foot").inner_text().endswith("stopped")
    assert page.is_visible("#send") and not page.is_visible("#stop")
    # The partial reply is kept (and saved): reloading shows it.
    kept = last_reply(page).locator(".markdown").inner_text()
    assert kept
    page.reload()
    assert last_reply(page).locator(".markdown").inner_text() == kept
    # Escape stops a reply too.
    send(page, "Another long one.")
    page.wait_for_function("document.querySelectorAll('article.assistant')[1].textContent.length > 60")
    assert wait_until(lambda: metric(tiny_server.url, RUNNING) == 1)
    page.keyboard.press("Escape")
    assert wait_until(lambda: metric(tiny_server.url, RUNNING) == 0), "Escape left the request running"
    wait_reply_done(page, 2)
    assert last_reply(page).locator(".message-foot").inner_text().endswith("stopped")


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

    # Regenerate replaces the last answer with a new request, one without that answer.
    with page.expect_request("**/v1/chat/completions") as request:
        page.click("#regenerate")
    assert request.value.post_data_json["messages"] == [{"role": "system", "content": "Be brief."},
                                                        {"role": "user", "content": "First question"}]
    wait_reply_done(page)
    assert page.locator("article.assistant").count() == 1
    assert last_reply(page).locator(".message-foot").inner_text().endswith("8 tokens · cut at max_tokens")

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
    # No answer at all (the connection fails): said so, not a silent empty reply.
    page.route("**/v1/chat/completions", lambda route: route.abort("connectionrefused"))
    send(page, "Hi again")
    wait_reply_done(page, 2)
    assert last_reply(page).locator(".error[role=alert]").inner_text().startswith("Error: Could not reach the server")


def test_nothing_is_fetched_from_elsewhere(page, tiny_server):
    """The page works offline: the page, its files and the API, all from the server itself."""
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    open_chat(page, tiny_server)
    set_field(page, "#max-tokens", "4")
    send(page, "Hello")
    wait_reply_done(page)
    page.reload()
    page.wait_for_selector("article.assistant")
    others = [url for url in urls if not url.startswith(tiny_server.url + "/") and not url.startswith("data:")]
    assert others == []
    paths = {url[len(tiny_server.url):] for url in urls if not url.startswith("data:")}
    page_files = {"/" + f for f in os.listdir(WEB_DIR) if f.endswith((".css", ".js"))}  # all of them, used
    assert paths == {"/", *page_files, "/v1/models", "/v1/chat/completions"}


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


def test_two_tabs_stay_in_step(page, tiny_server):
    page.context.route("**/v1/chat/completions", fulfil_with(chunk({"content": "Hi"}, finish="stop")
                                                             + "data: [DONE]\n\n"))
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
