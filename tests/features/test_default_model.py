"""The real default model (SmolLM2-135M-Instruct) under constraints: its guided_json answer is
valid JSON for the schema, and a named tool_choice yields valid arguments."""
from __future__ import annotations

import json

import jsonschema

from tests.features.conftest import SMOL

PERSON = {"type": "object",
          "properties": {"name": {"type": "string", "maxLength": 24},
                         "age": {"type": "integer", "minimum": 0, "maximum": 120},
                         "city": {"type": "string", "maxLength": 24}},
          "required": ["name", "age", "city"]}


def test_guided_json_on_smollm2(smol_client):
    out = smol_client.chat.completions.create(
        model=SMOL, max_tokens=100, temperature=0, extra_body={"guided_json": PERSON},
        messages=[{"role": "user", "content": "Describe Alice, 30 years old, who lives in Paris, as JSON "
                                              "with name, age and city."}])
    choice = out.choices[0]
    assert choice.finish_reason == "stop"
    person = json.loads(choice.message.content)
    jsonschema.validate(person, PERSON)


def test_named_tool_choice_on_smollm2(smol_client):
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "maxLength": 24}}, "required": ["city"]}}}
    out = smol_client.chat.completions.create(
        model=SMOL, max_tokens=60, temperature=0, tools=[weather],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        messages=[{"role": "user", "content": "What is the weather like in Paris?"}])
    [call] = out.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), weather["function"]["parameters"])
