"""Hermes-style tool calls, as Qwen2.5, Qwen3 and Hermes models write them:

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

Any number of blocks; the text outside them is content (whitespace at its end is dropped when
calls follow). A block whose JSON is not a call object makes the non-streaming answer plain
content, as if there were no calls; when streaming, what was not yet sent as a call goes out as
content."""
from __future__ import annotations

from ember.entrypoints.openai.reasoning.think import partial_suffix
from ember.entrypoints.openai.tool_parsers.calls import CallObject, ToolCallExtractor
from ember.entrypoints.openai.tool_parsers.json_scan import skip_ws

TOOL_CALL_START, TOOL_CALL_END = "<tool_call>", "</tool_call>"


class HermesToolParser(ToolCallExtractor):
    name = "hermes"

    def __init__(self) -> None:
        super().__init__()
        self._pos = 0                       # text before this was handled
        self._block: CallObject | None = None
        self._block_start = 0               # where the current block's <tool_call> is
        self._plain = False                 # gave up on calls: everything is content now
        self._pending = ""                  # whitespace-only content not sent yet

    def update(self, text: str, final: bool) -> list[dict]:
        out: list[dict] = []
        while True:
            if self._plain:
                self._content(text[self._pos:], out)
                self._pos = len(text)
                break
            if self._block is None:
                at = text.find(TOOL_CALL_START, self._pos)
                if at < 0:
                    end = len(text) if final else len(text) - partial_suffix(text[self._pos:], TOOL_CALL_START)
                    self._content(text[self._pos:end], out)
                    self._pos = end
                    break
                self._content(text[self._pos:at], out)
                self._block_start, self._pos = at, at + len(TOOL_CALL_START)
                self._block = CallObject(skip_ws(text, self._pos), len(self.calls))
                continue
            block = self._block
            block.progress(text, final, self.calls, out)
            if block.bad:
                self._give_up()
                continue
            if not block.done:
                if final:  # cut off inside a call
                    self._give_up()
                    continue
                break
            after = self._after_block(text, block.scanner.end, final)
            if after is None:
                break  # maybe the closing tag is still coming
            if not block.valid():
                self._give_up()
                continue
            self._block, self._pos = None, after
        if final and self._pending and not self.calls:
            out.append({"content": self._pending})
            self.content += self._pending
            self._pending = ""
        return out

    def _after_block(self, text: str, end: int, final: bool) -> int | None:
        """Where the text after a finished call object resumes: after its closing tag (text
        between the object and the tag is dropped), or at a next <tool_call> when the tag was
        left out. None: wait for more text."""
        i = skip_ws(text, end)
        rest = text[i:]
        if rest.startswith(TOOL_CALL_END):
            return i + len(TOOL_CALL_END)
        if rest.startswith(TOOL_CALL_START):
            return i
        close = text.find(TOOL_CALL_END, i)
        if close >= 0:
            return close + len(TOOL_CALL_END)
        return len(text) if final else None

    def _give_up(self) -> None:
        """Not a well-formed call: from its <tool_call> on, everything is content."""
        self.malformed = True
        self._plain = True
        self._block = None
        self._pos = self._block_start

    def _content(self, piece: str, out: list[dict]) -> None:
        if not piece:
            return
        # Trailing whitespace waits: it is dropped if a call follows and ends the output.
        self._pending += piece
        kept = self._pending.rstrip()
        if kept:
            out.append({"content": kept})
            self.content += kept
            self._pending = self._pending[len(kept):]
