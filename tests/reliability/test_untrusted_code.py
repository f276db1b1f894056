"""Nothing a client or a checkpoint controls runs as code: request chat templates (accepted here
through --trust-request-chat-template) render in Jinja's immutable sandbox, in a child process
with a time, memory and output limit; checkpoint code named by auto_map never runs, even with
--trust-remote-code; pickled weights are never unpickled into code."""
import os
import time

import httpx
import pytest

from tests.reliability.conftest import AUTH, NAME

CHAT = {"model": NAME, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "temperature": 0}
TEMPLATE_TIMEOUT_S = 3.0

HOSTILE_TEMPLATES = [
    # (template, words of the 400's message)
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "did not finish"),
    ("{{ 10 ** (10 ** 8) }}", "did not finish"),                 # one C-level operation: the child is killed
    ("{{ 'a' * 10 ** 10 }}", "memory"),
    ("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", "longer than the limit"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "unsafe"),
    ("{{ cycler.__init__.__globals__.os.system('true') }}", "unsafe"),
    ("{{ self._TemplateReference__context.keys() }}", "unsafe"),
    ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursed"),
    ("{{ raise_exception('no') }}", "no"),
    ("{% for m in messages %}", "endfor"),
]


@pytest.mark.parametrize("template,needle", HOSTILE_TEMPLATES)
def test_hostile_request_templates_fail_alone(guarded_server, template, needle):
    start = time.monotonic()
    r = httpx.post(guarded_server.url + "/v1/chat/completions", headers=AUTH, timeout=60,
                   json={**CHAT, "chat_template": template})
    elapsed = time.monotonic() - start
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]["message"]
    assert elapsed < TEMPLATE_TIMEOUT_S + 4
    ok = httpx.post(guarded_server.url + "/v1/chat/completions", headers=AUTH, timeout=60, json=CHAT)
    assert ok.status_code == 200, ok.text


def test_a_trusted_request_template_renders(guarded_server):
    template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}<assistant>"
    r = httpx.post(guarded_server.url + "/tokenize", headers=AUTH,
                   json={"messages": CHAT["messages"], "return_token_strs": True})
    assert r.status_code == 200
    r = httpx.post(guarded_server.url + "/v1/chat/completions", headers=AUTH, timeout=60,
                   json={**CHAT, "chat_template": template, "logprobs": True})
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] > 0


def test_checkpoint_code_never_runs(remote_code_server, hostile):
    marker = hostile["markers"]["remote_code"]
    url = remote_code_server.url
    r = httpx.post(url + "/v1/completions", json={"model": NAME, "prompt": "Hi", "max_tokens": 3}, timeout=30)
    assert r.status_code == 200, r.text
    # The checkpoint's own chat template tries to reach os.system: the sandbox refuses.
    r = httpx.post(url + "/v1/chat/completions", json=CHAT, timeout=30)
    assert r.status_code == 400 and "unsafe" in r.json()["error"]["message"], r.text
    assert httpx.get(url + "/health").status_code == 200
    assert not os.path.exists(marker)


def test_pickled_weights_are_refused_not_run(servers, hostile):
    server = servers["pickle"]
    code = server.wait_exit(180)
    assert code != 0
    assert "weights_only" in server.log() or "Unpickl" in server.log()
    assert not os.path.exists(hostile["markers"]["pickle"])
