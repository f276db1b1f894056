"""The parsers alone, on text split every which way: a stream's deltas add up to the
non-streaming answer of the same text."""
from __future__ import annotations

import argparse
import json
import random

import pytest

from ember.entrypoints.openai.chat_parsing import ChoiceParser, ToolPlan, plan_tools
from ember.entrypoints.openai.cli_args import ChatFeatures, chat_features, make_arg_parser
from ember.entrypoints.openai.errors import OpenAIError
from ember.entrypoints.openai.reasoning import REASONING_PARSERS, prompt_thinking_state
from ember.entrypoints.openai.tool_parsers import HermesToolParser, NamedToolCall, RequiredToolCalls
from ember.entrypoints.openai.tool_parsers.json_scan import ObjectScanner
from tests.features.scripts import SCRIPTS

HERMES = ToolPlan(HermesToolParser, None, True)
TEXTS = [
    *SCRIPTS.values(),
    "",
    "   ",
    "<tool_call>",
    "<tool_c",
    'x<tool_call>{"name":"n","arguments":{"q":1}}<tool_call>{"name":"m","parameters":{"z":[]}}',
    '<tool_call>{"name": "f", "arguments": "{\\"a\\": 1}"}</tool_call>',
    '<tool_call>{"name": "f"}</tool_call> then text',
    '<tool_call>{"name": "f", "arguments": {"a": [1, 2}}</tool_call>',
    "<think>a</think>b<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
    "<think>",
    "</think>",
    "<think>x</th",
    "plain <think> inside",
]


def pieces(text: str, rng: random.Random) -> list[str]:
    cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(0, 12)))) if len(text) > 1 else []
    return [text[:c] for c in cuts] + [text]


def replay(parser: ChoiceParser, text: str, rng: random.Random):
    reasoning, content, calls = "", "", {}
    prefixes = pieces(text, rng)
    for i, prefix in enumerate(prefixes):
        for delta in parser.update(prefix, i == len(prefixes) - 1):
            reasoning += delta.get("reasoning_content", "")
            content += delta.get("content", "")
            for call in delta.get("tool_calls", []):
                entry = calls.setdefault(call["index"], {"name": None, "arguments": ""})
                if "id" in call:
                    assert entry["name"] is None and call["function"]["arguments"] == ""
                    entry["name"] = call["function"]["name"]
                entry["arguments"] += call["function"]["arguments"]
    return reasoning or None, content or None, [(c["name"], c["arguments"]) for _, c in sorted(calls.items())]


@pytest.mark.parametrize("reasoning", [None, "deepseek_r1", "qwen3"])
@pytest.mark.parametrize("tools", [False, True])
def test_streams_add_up_to_the_message(reasoning, tools):
    rng = random.Random(0)
    for text in TEXTS:
        def parser():
            return ChoiceParser(REASONING_PARSERS[reasoning]() if reasoning else None, HERMES if tools else ToolPlan())
        message = parser().message(text)
        calls = [(c["function"]["name"], c["function"]["arguments"]) for c in message.tool_calls or []]
        malformed_after_name = tools and "arguments" in text and not calls and '"name"' in text
        for _ in range(10):
            r, c, streamed_calls = replay(parser(), text, rng)
            assert r == message.reasoning_content, text
            if malformed_after_name:  # a call already named in the stream cannot be taken back
                continue
            assert streamed_calls == calls, text
            if not tools:
                assert (c or None) == (message.content or None), text
            else:  # text beside calls: the same, once trailing whitespace is set aside
                assert (c or "").rstrip() == (message.content or "").rstrip(), text


def test_hermes_reads_calls_and_keeps_the_text_around_them():
    content, calls = HermesToolParser().result(SCRIPTS["SCRIPT:weather"])
    assert content == "I will look that up."
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Paris", "unit": "celsius"})]
    content, calls = HermesToolParser().result('<tool_call>{"name": "f", "arguments": "{\\"a\\": 1}"}</tool_call> ok')
    assert content == " ok" and calls[0].arguments == '{"a": 1}'
    for bad in (SCRIPTS["SCRIPT:malformed"], SCRIPTS["SCRIPT:no_name"], "<tool_call>[1, 2]</tool_call>"):
        assert HermesToolParser().result(bad) == (bad, [])


def test_required_and_named_calls():
    content, calls = RequiredToolCalls().result('[{"name": "a", "parameters": {"x": [1]}}, {"name": "b", "parameters": {}}]')
    assert content is None and [(c.name, c.arguments) for c in calls] == [("a", '{"x": [1]}'), ("b", "{}")]
    assert RequiredToolCalls().result('[{"name": "a", "parameters": {"x"')[1] == []
    content, calls = NamedToolCall("f").result('{"x": 1}')
    assert content is None and [(c.name, c.arguments) for c in calls] == [("f", '{"x": 1}')]
    assert NamedToolCall("f").result('{"x": ')[1] == []


def test_object_scanner_is_incremental():
    text = '  {"a": {"b": "}{\\"" }, "c" : [1, {"d": null}], "e": -1.5e3}'
    scanner = ObjectScanner(0)
    for end in range(len(text) + 1):
        scanner.feed(text[:end], end == len(text))
    assert scanner.end == len(text) and not scanner.error
    assert {k: json.loads(text[s:e]) for k, (s, e) in scanner.members.items()} == json.loads(text)
    bad = ObjectScanner(0)
    bad.feed('{"a": {"b": 1\n</tool_call>', False)
    assert bad.error


def test_reasoning_parsers():
    def rc(parser, text, final):
        split = parser.split(text, final)
        return split.reasoning, split.content

    deepseek, qwen3 = REASONING_PARSERS["deepseek_r1"], REASONING_PARSERS["qwen3"]
    assert rc(deepseek(), "<think>a</think>b", True) == ("a", "b")
    assert rc(deepseek(), "a</think>b", True) == ("a", "b")
    assert rc(deepseek(), "abc</thi", False) == ("abc", "")
    assert rc(qwen3(), "a</think>b", True) == ("", "a</think>b")
    assert rc(qwen3("open"), "a</think>b", True) == ("a", "b")
    for parser in (deepseek, qwen3):
        assert rc(parser("closed"), "<think>a</think>b", True) == ("", "<think>a</think>b")
        assert rc(parser(), "<thi", False) == ("", "")


def test_prompt_thinking_state():
    assert prompt_thinking_state("x<|im_start|>assistant\n", None) is None
    assert prompt_thinking_state("x<|im_start|>assistant\n<think>\n\n</think>\n\n", None) == "closed"
    assert prompt_thinking_state("x<|im_start|>assistant\n", {"enable_thinking": False}) == "closed"
    assert prompt_thinking_state("x<|im_start|>assistant\n<think>\n", {"enable_thinking": True}) == "open"


@pytest.mark.parametrize("flags", [[], ["--enable-reasoning"], ["--enable-reasoning-parser"]])
def test_reasoning_flag_spellings(flags):
    # vLLM's current spelling, vLLM 0.8's and seed 004's: the same server.
    args = make_arg_parser(argparse.ArgumentParser()).parse_args(
        ["--model", "m", *flags, "--reasoning-parser", "deepseek_r1", "--enable-auto-tool-choice",
         "--tool-call-parser", "hermes"])
    assert chat_features(args) == ChatFeatures(True, "hermes", "deepseek_r1")


def test_tool_choice_plans():
    features = ChatFeatures(True, "hermes", None)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert plan_tools(None, None, features).extractor is None
    assert plan_tools(tools, None, features).extractor is HermesToolParser
    assert plan_tools(tools, None, ChatFeatures()).extractor is None  # no flag: "none"
    assert plan_tools(tools, "none", features).extractor is None
    assert plan_tools(tools, "required", ChatFeatures()).guided.json["minItems"] == 1
    named = plan_tools(tools, {"type": "function", "function": {"name": "f"}}, ChatFeatures())
    assert named.guided.json == {"type": "object"} and not named.finish_as_tool_calls
    for tools_, choice in ((tools, "auto"), (None, "required"), (tools, {"function": {"name": "g"}}),
                           (tools, "sometimes"), ([{"type": "function", "function": {}}], "none")):
        with pytest.raises(OpenAIError):
            plan_tools(tools_, choice, ChatFeatures())


def test_no_output_makes_a_parser_fail():
    rng = random.Random(1)
    atoms = ["<tool_call>", "</tool_call>", "<think>", "</think>", "<tool", "</", '{"name": "f"', '"arguments": ',
             "{", "}", "[", "]", '"', "\\", ",", ":", " ", "\n", "x", "1", "null", "é"]
    plans = [ToolPlan(), HERMES, ToolPlan(RequiredToolCalls, None, True), ToolPlan(lambda: NamedToolCall("f"))]
    for _ in range(400):
        text = "".join(rng.choice(atoms) for _ in range(rng.randint(0, 30)))
        for reasoning in (None, "deepseek_r1", "qwen3"):
            plan = rng.choice(plans)
            ChoiceParser(REASONING_PARSERS[reasoning]() if reasoning else None, plan).message(text)
            replay(ChoiceParser(REASONING_PARSERS[reasoning]() if reasoning else None, plan), text, rng)
