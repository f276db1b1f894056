"""Reasoning parsers against running servers (deepseek_r1 started with the seed's
--enable-reasoning-parser, qwen3 with vLLM 0.8's --enable-reasoning): <think>...</think> into
reasoning_content, streamed and not; an answer that starts thinking without the opening tag,
alone or after a template that opened the block; enable_thinking false passed to the template
(then everything is content); reasoning followed by a tool call; and a JSON schema that
constrains only the text after </think>."""
from __future__ import annotations

import json

import jsonschema
import pytest

from tests.features.conftest import MODEL
from tests.features.scripts import SCRIPTS, WEATHER_ARGS
from tests.features.test_tools import TOOLS
from tests.tiny_models import smollm2_tokenizer

NO_THINKING = {"chat_template_kwargs": {"enable_thinking": False}}
# The test template's stand-in for R1 distills' templates: the prompt ends with "<think>\n".
OPEN_THINK = {"chat_template_kwargs": {"open_think": True}}
POINT = {"type": "object", "properties": {"x": {"type": "integer", "minimum": 1, "maximum": 9},
                                          "label": {"type": "string", "enum": ["near", "far"]}},
         "required": ["x", "label"]}


def ask(client, trigger: str, **kwargs):
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"Hi! {trigger}"}],
                                          max_tokens=200, temperature=0, **kwargs)


def streamed(client, trigger: str, **kwargs):
    """(reasoning, content, the order the two kinds of delta came in, finish_reason)."""
    reasoning, content, order, finish = "", "", [], None
    for chunk in ask(client, trigger, stream=True, **kwargs):
        delta = chunk.choices[0].delta
        r = getattr(delta, "reasoning_content", None)
        if r:
            reasoning += r
            order.append("reasoning")
        if delta.content:
            content += delta.content
            order.append("content")
        finish = chunk.choices[0].finish_reason or finish
    return reasoning, content, order, finish


def split(message):
    return getattr(message, "reasoning_content", None), message.content


@pytest.mark.parametrize("trigger,reasoning,content", [
    ("SCRIPT:greeting_thought", "\nThe user wants a greeting.\nI should say hi.\n", "\n\nHello there!"),
    ("SCRIPT:no_open_tag", "The user wants a greeting.\n", "\n\nHello!"),
    ("SCRIPT:unfinished_thought", "\nStill thinking about", None),
    # deepseek_r1: an answer without any tag is taken for an unfinished thought, as vLLM does.
    ("SCRIPT:plain", SCRIPTS["SCRIPT:plain"], None),
])
def test_deepseek_r1_splits_reasoning(reasoning_client, trigger, reasoning, content):
    choice = ask(reasoning_client, trigger).choices[0]
    assert split(choice.message) == (reasoning, content)
    r, c, order, finish = streamed(reasoning_client, trigger)
    assert (r, c or None) == (reasoning, content) and finish == "stop"
    assert order == sorted(order, key=lambda kind: kind == "content")  # all reasoning comes first


def test_enable_thinking_false_makes_everything_content(reasoning_client):
    out = ask(reasoning_client, "SCRIPT:no_thinking", extra_body=NO_THINKING)
    assert split(out.choices[0].message) == (None, SCRIPTS["SCRIPT:no_thinking"])
    # The template got the switch: it wrote the empty, closed think block into the prompt.
    thinking_on = ask(reasoning_client, "SCRIPT:no_thinking").usage.prompt_tokens
    closed_block = len(smollm2_tokenizer().encode("<think>\n\n</think>\n\n", add_special_tokens=False))
    assert out.usage.prompt_tokens == thinking_on + closed_block
    r, c, _, _ = streamed(reasoning_client, "SCRIPT:no_thinking", extra_body=NO_THINKING)
    assert (r, c) == ("", SCRIPTS["SCRIPT:no_thinking"])


@pytest.mark.parametrize("server", ["deepseek_r1", "qwen3"])
def test_a_prompt_that_opened_the_thinking(reasoning_client, qwen3_client, server):
    # Output without <think> is reasoning up to </think>: for qwen3 too, since the prompt opened it.
    client = reasoning_client if server == "deepseek_r1" else qwen3_client
    expected = ("The user wants a greeting.\n", "\n\nHello!")
    assert split(ask(client, "SCRIPT:no_open_tag", extra_body=OPEN_THINK).choices[0].message) == expected
    r, c, order, finish = streamed(client, "SCRIPT:no_open_tag", extra_body=OPEN_THINK)
    assert (r, c, finish) == (*expected, "stop") and order[-1] == "content"
    if server == "qwen3":  # without the opened block, qwen3 reads no reasoning into it
        assert split(ask(client, "SCRIPT:no_open_tag").choices[0].message) == \
            (None, SCRIPTS["SCRIPT:no_open_tag"])


def test_reasoning_then_a_tool_call(reasoning_client):
    choice = ask(reasoning_client, "SCRIPT:think_then_tool", tools=TOOLS).choices[0]
    assert choice.message.reasoning_content == "\nI need the weather tool.\n"
    assert choice.message.content is None and choice.finish_reason == "tool_calls"
    assert json.loads(choice.message.tool_calls[0].function.arguments) == WEATHER_ARGS
    r, c, _, finish = streamed(reasoning_client, "SCRIPT:think_then_tool", tools=TOOLS)
    assert (r, c, finish) == ("\nI need the weather tool.\n", "", "tool_calls")


def test_the_schema_constrains_only_the_answer_after_the_reasoning(reasoning_client):
    # Unconstrained, this test model answers "Let me think</think>": the grammar must wait for
    # the </think>, then make the rest valid JSON.
    schema = {"response_format": {"type": "json_schema", "json_schema": {"name": "point", "schema": POINT}}}
    choice = ask(reasoning_client, "", **schema).choices[0]
    assert choice.message.reasoning_content == "Let me think"
    jsonschema.validate(json.loads(choice.message.content), POINT)
    r, c, _, _ = streamed(reasoning_client, "", **schema)
    assert r == "Let me think" and c == choice.message.content


def test_with_thinking_off_the_schema_constrains_from_the_start(reasoning_client):
    choice = ask(reasoning_client, "", extra_body={"guided_json": POINT, **NO_THINKING}).choices[0]
    assert choice.message.reasoning_content is None
    jsonschema.validate(json.loads(choice.message.content), POINT)


@pytest.mark.parametrize("trigger,reasoning,content", [
    ("SCRIPT:greeting_thought", "\nThe user wants a greeting.\nI should say hi.\n", "\n\nHello there!"),
    ("SCRIPT:plain", None, SCRIPTS["SCRIPT:plain"]),  # qwen3: no <think>, no reasoning
])
def test_qwen3_splits_reasoning(qwen3_client, trigger, reasoning, content):
    assert split(ask(qwen3_client, trigger).choices[0].message) == (reasoning, content)
    r, c, _, _ = streamed(qwen3_client, trigger)
    assert (r or None, c) == (reasoning, content)
