"""Reasoning parsers (`--reasoning-parser`): split a thinking model's output into
`reasoning_content` (inside <think>...</think>) and `content` (the rest)."""
from ember.entrypoints.openai.reasoning.think import (REASONING_PARSERS, ReasoningParser, ReasoningSplit,
                                                      prompt_thinking_state)

__all__ = ["REASONING_PARSERS", "ReasoningParser", "ReasoningSplit", "prompt_thinking_state"]
