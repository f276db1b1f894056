"""Issue 22's chat items that need the feature servers: a tool_choice "required" grammar over
parameters schemas with their own "$defs" (as pydantic writes them), and reasoning under both of
vLLM's names, `reasoning` and `reasoning_content`, in messages and in deltas."""
from __future__ import annotations

import json

import jsonschema
import pytest

from ember.entrypoints.openai.protocol import ChatMessage
from ember.entrypoints.openai.serving_chat import _as_template_message

from tests.features.test_reasoning import ask as ask_reasoning
from tests.features.test_tools import SEARCH, ask

# pydantic's model_json_schema() of a tool taking nested models.
PYDANTIC_WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "$defs": {"Unit": {"enum": ["celsius", "fahrenheit"], "type": "string"},
              "WeatherOptions": {"properties": {"unit": {"$ref": "#/$defs/Unit"},
                                                "days": {"type": "integer", "minimum": 1, "maximum": 7}},
                                 "required": ["unit", "days"], "type": "object"}},
    "properties": {"city": {"type": "string", "minLength": 2, "maxLength": 20},
                   "options": {"$ref": "#/$defs/WeatherOptions"}},
    "required": ["city", "options"], "type": "object"}}}
# Another tool whose definitions share a name with the first's, and differ.
OTHER_UNIT = {"type": "function", "function": {"name": "convert", "parameters": {
    "$defs": {"Unit": {"enum": ["kelvin"], "type": "string"}},
    "properties": {"to": {"$ref": "#/$defs/Unit"}}, "required": ["to"], "type": "object"}}}


def test_required_tool_choice_keeps_each_functions_defs(tools_client):
    tools = [PYDANTIC_WEATHER, OTHER_UNIT, SEARCH]
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in tools}
    for stream in (False, True):
        if stream:
            chunks = list(ask(tools_client, "", tools=tools, tool_choice="required", stream=True))
            calls: dict[int, dict] = {}
            for chunk in chunks:
                for call in chunk.choices[0].delta.tool_calls or []:
                    entry = calls.setdefault(call.index, {"name": call.function.name, "arguments": ""})
                    entry["arguments"] += call.function.arguments or ""
            assert chunks[-1].choices[0].finish_reason == "tool_calls"
            found = list(calls.values())
        else:
            choice = ask(tools_client, "", tools=tools, tool_choice="required").choices[0]
            assert choice.finish_reason == "tool_calls"
            found = [{"name": c.function.name, "arguments": c.function.arguments} for c in choice.message.tool_calls]
        assert found
        for call in found:
            jsonschema.validate(json.loads(call["arguments"]), schemas[call["name"]])
    # The same tool named in tool_choice (its own schema at the root) keeps working.
    named = ask(tools_client, "", tools=tools, tool_choice={"type": "function", "function": {"name": "get_weather"}})
    jsonschema.validate(json.loads(named.choices[0].message.tool_calls[0].function.arguments), schemas["get_weather"])


def test_reasoning_under_both_names(reasoning_client):
    message = ask_reasoning(reasoning_client, "SCRIPT:greeting_thought").choices[0].message
    thought = "\nThe user wants a greeting.\nI should say hi.\n"
    assert message.reasoning == message.reasoning_content == thought
    old = new = ""
    for chunk in ask_reasoning(reasoning_client, "SCRIPT:greeting_thought", stream=True):
        delta = chunk.choices[0].delta
        old += getattr(delta, "reasoning_content", None) or ""
        new += getattr(delta, "reasoning", None) or ""
    assert old == new == thought


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_an_earlier_turns_reasoning_reaches_templates_under_both_names(field):
    """Qwen3's template reads reasoning_content; vLLM's newer clients send reasoning."""
    message = ChatMessage(role="assistant", content="Hello", **{field: "I thought about it."})
    as_template_sees_it = _as_template_message(message)
    assert as_template_sees_it["reasoning"] == as_template_sees_it["reasoning_content"] == "I thought about it."
