"""<think>...</think> reasoning, as DeepSeek-R1 and Qwen3 write it.

A parser looks at a choice's whole output so far (the engine's outputs are cumulative) and
returns what may be shown of its reasoning and of its content. What it returns only ever grows,
so streaming sends the differences: a partial tag at the end (`</thi`) is held back until the
next text shows whether it is one.

- deepseek_r1: the output is reasoning until </think>, whether or not it starts with <think>
  (R1's distills and newer templates put the opening tag in the prompt).
- qwen3: the output is reasoning only when it starts with <think> (or the prompt opened the
  block); otherwise all of it is content.
Both: when the prompt already closed the block (`chat_template_kwargs: {"enable_thinking":
false}` makes Qwen3's template write an empty <think></think>), everything is content; when the
prompt ends with an opening <think>, the output starts inside the block."""
from __future__ import annotations

from dataclasses import dataclass

THINK_START, THINK_END = "<think>", "</think>"


def prompt_thinking_state(prompt: str, chat_template_kwargs: dict | None) -> str | None:
    """"closed" when the prompt ended the thinking already, "open" when it opened it (the output
    starts inside the block), None when the prompt says nothing."""
    if (chat_template_kwargs or {}).get("enable_thinking") is False:
        return "closed"
    tail = prompt.rstrip()
    if tail.endswith(THINK_END):
        return "closed"
    if tail.endswith(THINK_START):
        return "open"
    return None


def partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that is a proper beginning of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


@dataclass
class ReasoningSplit:
    reasoning: str    # the reasoning that may be shown so far
    content: str      # the content that may be shown so far
    thinking: bool    # the output has (or may have) a reasoning part


class ReasoningParser:
    name = ""
    # The output may think without writing the opening tag.
    implicit_start = False

    def __init__(self, prompt_state: str | None = None):
        self.prompt_state = prompt_state

    def split(self, text: str, final: bool) -> ReasoningSplit:
        if self.prompt_state == "closed":
            return ReasoningSplit("", text, False)
        if text.startswith(THINK_START):
            body = text[len(THINK_START):]
        elif not final and THINK_START.startswith(text):
            return ReasoningSplit("", "", True)  # maybe the opening tag: wait
        elif self.implicit_start or self.prompt_state == "open":
            body = text
        else:
            return ReasoningSplit("", text, False)
        end = body.find(THINK_END)
        if end >= 0:
            return ReasoningSplit(body[:end], body[end + len(THINK_END):], True)
        if final:
            return ReasoningSplit(body, "", True)  # cut off while thinking
        return ReasoningSplit(body[:len(body) - partial_suffix(body, THINK_END)], "", True)


class DeepSeekR1ReasoningParser(ReasoningParser):
    name = "deepseek_r1"
    implicit_start = True


class Qwen3ReasoningParser(ReasoningParser):
    name = "qwen3"
    implicit_start = False


REASONING_PARSERS: dict[str, type[ReasoningParser]] = {
    p.name: p for p in (DeepSeekR1ReasoningParser, Qwen3ReasoningParser)}
