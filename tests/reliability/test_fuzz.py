"""Schemathesis against the server's own /openapi.json: every operation, with bodies that fit
the schema and bodies that do not (a few hundred cases, derandomized, so CI runs the same ones
each time). No response, and no event inside a stream, may be a 5xx; afterwards the server is
healthy, serves a normal request and holds no KV block."""
import json
import time

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from tests.reliability.conftest import AUTH, NAME
from tests.server.launcher import metric

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.generation import GenerationMode  # noqa: E402

# Examples per operation and kind: bodies that fit the schema (with any model name, then with
# the served one, which gets past the 404 into the engine) and bodies that do not.
EXAMPLES_WITH_BODY = {"positive": 30, "positive, served model": 30, "negative": 25}
EXAMPLES_WITHOUT_BODY = 5


def server_errors_in(response) -> list:
    """5xx statuses: the response's own, and any error event of a stream that had begun."""
    found = [response.status_code] if response.status_code >= 500 else []
    content_type = response.headers.get("content-type") or [""]  # schemathesis: a list per header
    if content_type[0].startswith("text/event-stream"):
        for line in response.text.splitlines():
            if line.startswith("data: {") and '"error"' in line:
                code = json.loads(line[6:]).get("error", {}).get("code", 0)
                if isinstance(code, int) and code >= 500:
                    found.append(code)
    return found


def with_served_model(case):
    if isinstance(case.body, dict):
        case.body["model"] = NAME
    return case


def strategy(op, kind: str):
    if kind == "negative":
        return op.as_strategy(generation_mode=GenerationMode.NEGATIVE)
    positive = op.as_strategy(generation_mode=GenerationMode.POSITIVE)
    return positive.map(with_served_model) if kind.endswith("served model") else positive


def test_schemathesis_finds_no_server_error(fuzz_server, report):
    url = fuzz_server.url
    schema = schemathesis.openapi.from_url(url + "/openapi.json", headers=AUTH)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "GET /health", "GET /version", "GET /metrics", "GET /v1/models", "POST /v1/completions",
        "POST /v1/chat/completions", "POST /tokenize", "POST /detokenize"}
    statuses: dict[int, int] = {}
    failures = []
    no_negative: list[str] = []
    start = time.monotonic()
    for op in operations:
        has_body = op.method.upper() == "POST"
        kinds = EXAMPLES_WITH_BODY if has_body else {"positive": EXAMPLES_WITHOUT_BODY}
        for kind, examples in kinds.items():
            @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=strategy(op, kind))
            def check(case):
                response = case.call(base_url=url, headers=AUTH, timeout=60)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                errors = server_errors_in(response)
                if errors:
                    failures.append((op.method, op.path, kind, case.body, errors, response.text[:300]))

            try:
                check()
            except Unsatisfiable:
                # A body that accepts any JSON object (POST /invocations) has no invalid case.
                assert kind == "negative", (op.method, op.path, kind)
                no_negative.append(f"{op.method.upper()} {op.path}")
    seconds = time.monotonic() - start
    assert not failures, failures[:5]
    assert httpx.get(url + "/health").status_code == 200
    r = httpx.post(url + "/v1/completions", headers=AUTH, timeout=30,
                   json={"model": NAME, "prompt": "Still here?", "max_tokens": 3})
    assert r.status_code == 200
    deadline = time.monotonic() + 10
    while metric(url, "ember:kv_cache_used_blocks"):
        assert time.monotonic() < deadline, "KV blocks left in use after fuzzing"
        time.sleep(0.05)
    cases = sum(statuses.values())
    assert cases >= 200
    report("schemathesis", operations=len(operations), cases=cases, server_errors=len(failures),
           statuses=dict(sorted(statuses.items())), seconds=round(seconds, 1),
           without_invalid_bodies=no_negative)
