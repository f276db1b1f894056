"""What a chat choice's text means: reasoning (--reasoning-parser), content, and tool calls
(tools + tool_choice, --enable-auto-tool-choice --tool-call-parser).

tool_choice, as vLLM and OpenAI treat it:
- "none": the tools are shown to the model (the template renders them), nothing is parsed;
- "auto" (the default when tools are given and the server has --enable-auto-tool-choice;
  otherwise the default is "none"): the tool-call parser reads calls out of the output;
- "required": the grammar makes the output a JSON array of {"name", "parameters"} calls;
- {"type": "function", "function": {"name": ...}}: the grammar makes the output that
  function's arguments (a JSON object valid for its `parameters` schema).

One ChoiceParser per choice: `update` turns the cumulative text into stream deltas, `message`
reads the whole text for a non-streaming response. Both use the same parsers, so a stream adds
up to the non-streaming message of the same text (except where malformed calls degrade)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ember.entrypoints.openai.cli_args import ChatFeatures
from ember.entrypoints.openai.errors import OpenAIError
from ember.entrypoints.openai.reasoning import REASONING_PARSERS, ReasoningParser
from ember.entrypoints.openai.tool_schema import required_calls_schema
from ember.entrypoints.openai.tool_parsers import (TOOL_PARSERS, NamedToolCall, RequiredToolCalls,
                                                   ToolCallExtractor)
from ember.structured.params import GuidedDecodingParams

# A function's arguments when it declares no parameters.
_NO_PARAMETERS = {"type": "object", "properties": {}}


@dataclass
class ToolPlan:
    extractor: Callable[[], ToolCallExtractor] | None = None   # None: no tool parsing
    guided: GuidedDecodingParams | None = None                  # the grammar tool_choice imposes
    finish_as_tool_calls: bool = False                          # finish_reason "tool_calls" when called


def plan_tools(tools: list[dict] | None, tool_choice: Any, features: ChatFeatures) -> ToolPlan:
    if not tools:
        if tool_choice not in (None, "none"):
            raise OpenAIError("tool_choice needs tools.", param="tool_choice")
        return ToolPlan()
    functions = _functions(tools)
    if tool_choice is None:
        tool_choice = "auto" if features.enable_auto_tool_choice else "none"
    if tool_choice == "none":
        return ToolPlan()
    if tool_choice == "auto":
        if not features.enable_auto_tool_choice or features.tool_call_parser is None:
            raise OpenAIError('"auto" tool choice needs the server started with --enable-auto-tool-choice and '
                              "--tool-call-parser.", param="tool_choice")
        return ToolPlan(TOOL_PARSERS[features.tool_call_parser], None, True)
    if tool_choice == "required":
        return ToolPlan(RequiredToolCalls, GuidedDecodingParams(json=required_calls_schema(functions)), True)
    name = _named_choice(tool_choice)
    if name not in functions:
        raise OpenAIError(f"tool_choice names the function {name!r}, which is not among the tools.",
                          param="tool_choice")
    return ToolPlan(lambda: NamedToolCall(name), GuidedDecodingParams(json=functions[name]), False)


def _functions(tools: list[dict]) -> dict[str, dict]:
    """name -> parameters schema, checking the tools' shape."""
    functions = {}
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not isinstance(fn, dict):
            raise OpenAIError(f'tools[{i}] must be {{"type": "function", "function": {{"name": ...}}}}.',
                              param="tools")
        name, params = fn.get("name"), fn.get("parameters")
        if not isinstance(name, str) or not name:
            raise OpenAIError(f"tools[{i}].function.name must be a non-empty string.", param="tools")
        if params is not None and not isinstance(params, dict):
            raise OpenAIError(f"tools[{i}].function.parameters must be a JSON schema object.", param="tools")
        functions[name] = params or _NO_PARAMETERS
    return functions


def _named_choice(tool_choice: Any) -> str:
    if isinstance(tool_choice, dict) and tool_choice.get("type", "function") == "function":
        fn = tool_choice.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return fn["name"]
    raise OpenAIError('tool_choice must be "none", "auto", "required" or {"type": "function", '
                      '"function": {"name": ...}}.', param="tool_choice")


def reasoning_parser(features: ChatFeatures, prompt_state: str | None) -> ReasoningParser | None:
    if features.reasoning_parser is None:
        return None
    return REASONING_PARSERS[features.reasoning_parser](prompt_state)


@dataclass
class ParsedMessage:
    content: str | None
    reasoning_content: str | None
    tool_calls: list[dict] | None


class ChoiceParser:
    def __init__(self, reasoning: ReasoningParser | None, plan: ToolPlan):
        self.reasoning = reasoning
        self.plan = plan
        self.tools = plan.extractor() if plan.extractor is not None else None
        self._sent_reasoning = 0
        self._sent_content = 0

    def _content_of(self, text: str, final: bool, out: list[dict]) -> str:
        if self.reasoning is None:
            return text
        split = self.reasoning.split(text, final)
        new = split.reasoning[self._sent_reasoning:]
        if new:
            out.append({"reasoning": new, "reasoning_content": new})  # vLLM's newer name, and the older
            self._sent_reasoning = len(split.reasoning)
        return split.content

    def update(self, text: str, final: bool) -> list[dict]:
        """Deltas for the output so far (`final`: the choice finished)."""
        out: list[dict] = []
        content = self._content_of(text, final, out)
        if self.tools is not None:
            if content or final:
                out += self.tools.update(content, final)
        elif len(content) > self._sent_content:
            out.append({"content": content[self._sent_content:]})
            self._sent_content = len(content)
        return out

    def message(self, text: str) -> ParsedMessage:
        reasoning = None
        content: str | None = text
        if self.reasoning is not None:
            split = self.reasoning.split(text, final=True)
            reasoning = split.reasoning if split.thinking and split.reasoning else None
            content = split.content or None
        if self.tools is None:
            return ParsedMessage(content, reasoning, None)
        content, calls = self.tools.result(content or "")
        return ParsedMessage(content, reasoning, [c.as_json() for c in calls] or None)

    def finish_reason(self, reason: str | None) -> str | None:
        if reason == "stop" and self.plan.finish_as_tool_calls and self.tools is not None \
                and self.tools.calls and not self.tools.malformed:
            return "tool_calls"
        return reason
