"""Structured output against a running server, through every way a request can ask for it:
the output parses and validates (jsonschema) for nested objects, arrays, enums, required fields
and bounded numbers; regexes, choices and grammars are honoured; bad constraints are 400s."""
from __future__ import annotations

import json
import re

import httpx
import jsonschema
import openai
import pytest

from tests.features.conftest import MODEL

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 2, "maxLength": 12},
        "age": {"type": "integer", "minimum": 18, "maximum": 99},
        "height_m": {"type": "number", "minimum": 0.5, "maximum": 2.5},
        "role": {"type": "string", "enum": ["admin", "editor", "viewer"]},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["red", "green", "blue"]},
                 "minItems": 2, "maxItems": 4},
        "address": {"type": "object",
                    "properties": {"city": {"type": "string", "minLength": 1},
                                   "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
                                   "geo": {"type": "object",
                                           "properties": {"lat": {"type": "number", "minimum": -90, "maximum": 90},
                                                          "lon": {"type": "number", "minimum": -180, "maximum": 180}},
                                           "required": ["lat", "lon"]}},
                    "required": ["city", "zip", "geo"]},
        "active": {"type": "boolean"},
        "nickname": {"type": "string"},
    },
    "required": ["name", "age", "height_m", "role", "tags", "address", "active"],
}
ITEMS = {"type": "array", "minItems": 2, "maxItems": 3, "items": {
    "type": "object", "properties": {"id": {"type": "integer", "minimum": 1, "maximum": 9},
                                     "score": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                                     "kind": {"enum": ["a", "b", None]}},
    "required": ["id", "score", "kind"]}}
WITH_REFS = {"$defs": {"point": {"type": "object", "properties": {"x": {"type": "integer", "minimum": -3, "maximum": 3},
                                                                   "y": {"type": "integer", "minimum": -3, "maximum": 3}},
                                 "required": ["x", "y"]}},
             "type": "object",
             "properties": {"start": {"$ref": "#/$defs/point"}, "end": {"$ref": "#/$defs/point"},
                            "label": {"anyOf": [{"type": "string", "minLength": 1}, {"type": "integer"}]}},
             "required": ["start", "end", "label"]}
SCHEMAS = {"person": PERSON, "items": ITEMS, "refs": WITH_REFS}
MESSAGES = [{"role": "user", "content": "Answer in JSON."}]


def chat(client, **kwargs):
    kwargs.setdefault("max_tokens", 300)
    kwargs.setdefault("temperature", 0)
    return client.chat.completions.create(model=MODEL, messages=MESSAGES, **kwargs)


def valid(text: str, schema: dict):
    value = json.loads(text)
    jsonschema.validate(value, schema)
    return value


@pytest.mark.parametrize("name", SCHEMAS)
@pytest.mark.parametrize("how", ["response_format", "guided_json", "structured_outputs"])
def test_json_schemas_validate(tools_client, name, how):
    schema = SCHEMAS[name]
    if how == "response_format":
        kwargs = {"response_format": {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}}
    elif how == "guided_json":
        kwargs = {"extra_body": {"guided_json": schema}}
    else:
        kwargs = {"extra_body": {"structured_outputs": {"json": schema}}}
    choice = chat(tools_client, **kwargs).choices[0]
    assert choice.finish_reason == "stop"
    valid(choice.message.content, schema)


def test_sampled_streamed_and_several_choices_validate(tools_client):
    out = chat(tools_client, n=3, temperature=1.0, seed=7, extra_body={"guided_json": PERSON, "top_k": 50})
    assert len(out.choices) == 3
    for choice in out.choices:
        valid(choice.message.content, PERSON)
    chunks = chat(tools_client, stream=True, extra_body={"guided_json": ITEMS})
    valid("".join(c.choices[0].delta.content or "" for c in chunks if c.choices), ITEMS)


def test_completions_accept_constraints(tools_client):
    out = tools_client.completions.create(model=MODEL, prompt="A JSON list:", max_tokens=200, temperature=0,
                                          extra_body={"guided_json": ITEMS})
    valid(out.choices[0].text, ITEMS)
    out = tools_client.completions.create(model=MODEL, prompt=["a", "b"], max_tokens=20, temperature=0,
                                          extra_body={"guided_choice": ["yes", "no"]})
    assert [c.text for c in out.choices] in (["yes", "yes"], ["yes", "no"], ["no", "yes"], ["no", "no"])


def test_json_object_mode(tools_client):
    content = chat(tools_client, response_format={"type": "json_object"}).choices[0].message.content
    assert isinstance(json.loads(content), dict)


@pytest.mark.parametrize("body", [{"guided_regex": r"\d{3}-[a-z]{2,5}"},
                                  {"structured_outputs": {"regex": r"\d{3}-[a-z]{2,5}"}}])
def test_regex_is_honoured(tools_client, body):
    content = chat(tools_client, extra_body=body).choices[0].message.content
    assert re.fullmatch(r"\d{3}-[a-z]{2,5}", content), content


@pytest.mark.parametrize("field", ["guided_choice", "structured_outputs"])
def test_choice_is_honoured(tools_client, field):
    choices = ["red", "green", "blue", "dark blue"]
    body = {"guided_choice": choices} if field == "guided_choice" else {"structured_outputs": {"choice": choices}}
    for seed in range(3):
        out = chat(tools_client, temperature=1.0, seed=seed, extra_body=body)
        assert out.choices[0].message.content in choices


@pytest.mark.parametrize("field", ["guided_grammar", "structured_outputs"])
def test_ebnf_grammar_is_honoured(tools_client, field):
    # (Bounded: this test model prefers ", " to " FROM" and would list columns for ever.)
    grammar = 'root ::= "SELECT " column (", " column)? (", " column)? " FROM " table\n' \
              'column ::= "id" | "name" | "age"\ntable ::= "users" | "orders"'
    body = {"guided_grammar": grammar} if field == "guided_grammar" else {"structured_outputs": {"grammar": grammar}}
    content = chat(tools_client, extra_body=body).choices[0].message.content
    assert re.fullmatch(r"SELECT (id|name|age)(, (id|name|age)){0,2} FROM (users|orders)", content), content


@pytest.mark.parametrize("body,needle", [
    ({"guided_json": {"type": "foo"}}, "JSON schema"),
    ({"guided_json": {"type": "object", "properties": {"a": {"type": "string", "minLength": "x"}}}}, "JSON schema"),
    ({"guided_json": {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}}, "JSON schema"),
    ({"guided_json": "{not json"}, "not valid JSON"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "json_schema.schema"),
    ({"response_format": {"type": "yaml"}}, "response_format"),
    ({"guided_regex": "[a-"}, "regex"),
    ({"guided_choice": []}, "choice"),
    ({"guided_grammar": "root ::= ("}, "grammar"),
    ({"guided_json": {"type": "object"}, "guided_regex": "a+"}, "one kind"),
    ({"structured_outputs": {"json": {"type": "object"}, "regex": "a"}}, "exactly one"),
    ({"structured_outputs": {"xml": "<a/>"}}, "xml"),
])
def test_bad_constraints_are_400s(tools_server, body, needle):
    for route, base in (("/v1/chat/completions", {"messages": MESSAGES}), ("/v1/completions", {"prompt": "hi"})):
        for stream in (False, True):  # a stream is refused before it starts
            response = httpx.post(tools_server.url + route,
                                  json={"model": MODEL, "max_tokens": 5, "stream": stream, **base, **body})
            assert response.status_code == 400, response.text
            error = response.json()["error"]  # OpenAI's error shape
            assert needle in error["message"]
            assert (error["type"], error["code"]) == ("BadRequestError", 400)
            assert error["param"] in body, error


def test_the_openai_client_sees_a_bad_request(tools_client):
    with pytest.raises(openai.BadRequestError, match="Invalid JSON schema") as raised:
        chat(tools_client, extra_body={"guided_json": {"type": "foo"}})
    assert raised.value.status_code == 400 and raised.value.param == "guided_json"
