"""Tool-call parsers (`--tool-call-parser`), and the extractors that tool_choice "required" and
a named function use (the grammar fixes their output's shape)."""
from ember.entrypoints.openai.tool_parsers.calls import (NamedToolCall, RequiredToolCalls, ToolCall,
                                                        ToolCallExtractor)
from ember.entrypoints.openai.tool_parsers.hermes import HermesToolParser

TOOL_PARSERS: dict[str, type[ToolCallExtractor]] = {"hermes": HermesToolParser}

__all__ = ["TOOL_PARSERS", "HermesToolParser", "NamedToolCall", "RequiredToolCalls", "ToolCall",
           "ToolCallExtractor"]
