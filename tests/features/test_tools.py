"""Tool calling against a running server: hermes blocks parsed into OpenAI tool_calls, streamed
as OpenAI streams them, malformed output kept as content, tool_choice none / auto / required /
a named function (the last two enforced by a grammar), and the next turn with tool results."""
from __future__ import annotations

import json

import httpx
import jsonschema
import openai
import pytest

from tests.features.conftest import MODEL
from tests.features.scripts import SCRIPTS, TWO_CALLS_ARGS, WEATHER_ARGS

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "minLength": 2, "maxLength": 20},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7}},
        "required": ["city", "unit", "days"]}}}
SEARCH = {"type": "function", "function": {
    "name": "search", "description": "Search the web.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string", "minLength": 3}},
                   "required": ["query"]}}}
TOOLS = [WEATHER, SEARCH]


def ask(client, trigger: str, **kwargs):
    kwargs.setdefault("tools", TOOLS)
    return client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": f"What is the weather in Paris? {trigger}"}],
        max_tokens=200, temperature=0, **kwargs)


def stream(client, trigger: str, **kwargs):
    """The stream's chunks, and what they add up to per field."""
    chunks = list(ask(client, trigger, stream=True, **kwargs))
    content, calls, finish = "", {}, None
    for chunk in chunks:
        choice = chunk.choices[0]
        delta = choice.delta
        content += delta.content or ""
        for call in delta.tool_calls or []:
            if call.index not in calls:
                # A call's first delta: its id, type and name, with empty arguments.
                assert call.id and call.type == "function" and call.function.name
                assert call.function.arguments == ""
                calls[call.index] = {"id": call.id, "name": call.function.name, "arguments": ""}
            else:
                assert call.id is None and call.function.name is None
                calls[call.index]["arguments"] += call.function.arguments
        finish = choice.finish_reason or finish
    return chunks, content, [calls[i] for i in sorted(calls)], finish


def test_a_tool_call_is_parsed(tools_client):
    out = ask(tools_client, "SCRIPT:weather")
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "I will look that up."
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == WEATHER_ARGS


def test_several_calls_and_tricky_arguments(tools_client):
    choice = ask(tools_client, "SCRIPT:two_calls").choices[0]
    assert choice.message.content is None and choice.finish_reason == "tool_calls"
    assert [c.function.name for c in choice.message.tool_calls] == ["get_weather", "search"]
    assert [json.loads(c.function.arguments) for c in choice.message.tool_calls] == TWO_CALLS_ARGS
    assert len({c.id for c in choice.message.tool_calls}) == 2


@pytest.mark.parametrize("trigger", ["SCRIPT:weather", "SCRIPT:two_calls"])
def test_streamed_calls_add_up_to_the_final_ones(tools_client, trigger):
    whole = ask(tools_client, trigger).choices[0]
    chunks, content, calls, finish = stream(tools_client, trigger)
    assert finish == "tool_calls"
    assert content == (whole.message.content or "")
    assert [(c["name"], c["arguments"]) for c in calls] == \
        [(c.function.name, c.function.arguments) for c in whole.message.tool_calls]
    # The arguments came in pieces, after the name.
    fragments = [c for chunk in chunks for c in (chunk.choices[0].delta.tool_calls or []) if c.id is None]
    assert len(fragments) > len(calls)


@pytest.mark.parametrize("trigger", ["SCRIPT:malformed", "SCRIPT:no_name"])
def test_malformed_calls_are_plain_content(tools_client, trigger):
    choice = ask(tools_client, trigger).choices[0]
    assert choice.message.tool_calls is None and choice.finish_reason == "stop"
    assert choice.message.content == SCRIPTS[trigger]
    # Streamed, the text goes out as content too; a call whose name was sent before its JSON
    # broke stays in the stream (it cannot be taken back), but the finish is not "tool_calls".
    _, content, calls, finish = stream(tools_client, trigger)
    assert content == SCRIPTS[trigger] and finish == "stop"
    assert calls == [] if trigger == "SCRIPT:no_name" else [c["name"] for c in calls] == ["get_weather"]


def test_plain_answers_stay_content(tools_client):
    choice = ask(tools_client, "SCRIPT:plain").choices[0]
    assert choice.message.content == SCRIPTS["SCRIPT:plain"] and choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert stream(tools_client, "SCRIPT:plain")[1] == SCRIPTS["SCRIPT:plain"]


def test_tool_choice_none_leaves_the_text_alone(tools_client):
    choice = ask(tools_client, "SCRIPT:weather", tool_choice="none").choices[0]
    assert choice.message.content == SCRIPTS["SCRIPT:weather"] and choice.message.tool_calls is None
    assert choice.finish_reason == "stop"


def test_tools_are_rendered_through_the_chat_template(tools_client):
    marked = {"type": "function", "function": {"name": "lookup", "description": "SCRIPT:plain",
                                               "parameters": {"type": "object", "properties": {}}}}
    out = tools_client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}],
                                               tools=[marked], max_tokens=50, temperature=0)
    assert out.choices[0].message.content == SCRIPTS["SCRIPT:plain"]


def test_tool_results_on_the_next_turn(tools_client):
    first = ask(tools_client, "SCRIPT:weather").choices[0].message
    messages = [{"role": "user", "content": "What is the weather in Paris?"},
                first.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "22 degrees SCRIPT:after_tool"}]
    out = tools_client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, max_tokens=50,
                                               temperature=0)
    assert out.choices[0].message.content == SCRIPTS["SCRIPT:after_tool"]
    assert out.choices[0].finish_reason == "stop"


def test_a_named_tool_choice_is_enforced(tools_client):
    choice = ask(tools_client, "", tool_choice={"type": "function", "function": {"name": "get_weather"}}).choices[0]
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather" and choice.finish_reason == "stop"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])
    _, content, calls, _ = stream(tools_client, "", tool_choice={"type": "function",
                                                                  "function": {"name": "get_weather"}})
    assert content == "" and [(c["name"], c["arguments"]) for c in calls] == \
        [("get_weather", call.function.arguments)]


def test_required_tool_choice_is_enforced(tools_client):
    choice = ask(tools_client, "", tool_choice="required").choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    for call in choice.message.tool_calls:
        jsonschema.validate(json.loads(call.function.arguments), schemas[call.function.name])
    _, _, calls, finish = stream(tools_client, "", tool_choice="required")
    assert finish == "tool_calls"
    assert [(c["name"], c["arguments"]) for c in calls] == \
        [(c.function.name, c.function.arguments) for c in choice.message.tool_calls]


def test_bad_tool_requests_are_400s(tools_client, tools_server):
    with pytest.raises(openai.BadRequestError, match="not among the tools"):
        ask(tools_client, "", tool_choice={"type": "function", "function": {"name": "nope"}})
    with pytest.raises(openai.BadRequestError, match="tool_choice needs tools"):
        ask(tools_client, "", tools=openai.NOT_GIVEN, tool_choice="required")
    with pytest.raises(openai.BadRequestError, match="cannot be combined"):
        ask(tools_client, "", tool_choice="required", response_format={"type": "json_object"})
    bad_schema = [{"type": "function", "function": {"name": "f", "parameters": {"type": "foo"}}}]
    with pytest.raises(openai.BadRequestError, match="tools: .*Invalid JSON schema") as raised:
        ask(tools_client, "", tools=bad_schema, tool_choice="required")
    assert raised.value.param == "tools"
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]}
    response = httpx.post(tools_server.url + "/v1/chat/completions", json=body)
    assert response.status_code == 400 and "tools[0]" in response.json()["error"]["message"]


def test_auto_tool_choice_needs_the_server_flag(qwen3_client):
    with pytest.raises(openai.BadRequestError, match="--enable-auto-tool-choice"):
        ask(qwen3_client, "", tool_choice="auto")
    # Without the flag, tools alone mean tool_choice "none": rendered, not parsed.
    choice = ask(qwen3_client, "SCRIPT:weather").choices[0]
    assert choice.message.tool_calls is None and choice.message.content == SCRIPTS["SCRIPT:weather"]


def test_streamed_logprobs_with_parsing_cover_every_token(tools_client):
    chunks = list(ask(tools_client, "SCRIPT:weather", stream=True, n=2, logprobs=True, top_logprobs=2,
                      stream_options={"include_usage": True}))
    tokens = {0: 0, 1: 0}
    for chunk in chunks:
        for choice in chunk.choices:
            if choice.logprobs and choice.logprobs.content:
                tokens[choice.index] += len(choice.logprobs.content)
    assert tokens[0] + tokens[1] == chunks[-1].usage.completion_tokens
