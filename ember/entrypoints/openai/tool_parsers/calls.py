"""Tool calls out of a choice's content, as it streams in, in OpenAI's shapes.

An extractor is fed the content so far (it only grows) and returns the deltas to send: content
text, and tool-call deltas the way OpenAI streams them: the first delta of a call carries its
index, id, type and function name with empty arguments, the next ones argument fragments.
A call's `arguments` is the exact JSON text the model wrote for them, so the fragments add up to
the final string. The non-streaming response runs the same extractor once over the whole text,
and falls back to plain content when the output is not well-formed tool calls."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from ember.entrypoints.openai.tool_parsers.json_scan import ObjectScanner, skip_ws

# Keys of a call object: the function's name, and its arguments (either spelling).
NAME_KEY = "name"
ARGUMENT_KEYS = ("arguments", "parameters")


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


@dataclass
class ToolCall:
    id: str
    name: str = ""
    arguments: str = ""

    def as_json(self) -> dict:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


def announce_delta(index: int, call: ToolCall) -> dict:
    return {"tool_calls": [{"index": index, "id": call.id, "type": "function",
                            "function": {"name": call.name, "arguments": ""}}]}


def arguments_delta(index: int, fragment: str) -> dict:
    return {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}


class ToolCallExtractor:
    def __init__(self) -> None:
        self.calls: list[ToolCall] = []
        self.content = ""          # content text sent so far
        self.malformed = False     # the output is not (only) well-formed tool calls

    def update(self, text: str, final: bool) -> list[dict]:
        raise NotImplementedError

    def result(self, text: str) -> tuple[str | None, list[ToolCall]]:
        """The whole output at once (non-streaming): (content, tool calls); malformed output
        is all content."""
        self.update(text, final=True)
        if self.malformed or not self.calls:
            return (text if text.strip() else None), []
        return (self.content if self.content.strip() else None), self.calls


class CallObject:
    """One `{"name": ..., "arguments": {...}}` object: announces the call once its name is
    known, then sends its arguments' text as it arrives."""

    def __init__(self, start: int, index: int):
        self.scanner = ObjectScanner(start)
        self.index = index
        self.call: ToolCall | None = None
        self.bad = False

    @property
    def done(self) -> bool:
        return self.scanner.end is not None

    def progress(self, text: str, final: bool, calls: list[ToolCall], out: list[dict]) -> None:
        s = self.scanner
        s.feed(text, final)
        if s.error:
            self.bad = True
            return
        if self.call is None:
            span = s.members.get(NAME_KEY)
            if span is None or span[1] is None:
                if s.end is not None:
                    self.bad = True  # an object without a name
                return
            try:
                name = json.loads(text[span[0]:span[1]])
            except json.JSONDecodeError:
                name = None
            if not isinstance(name, str) or not name:
                self.bad = True
                return
            self.call = ToolCall(new_call_id(), name)
            calls.append(self.call)
            out.append(announce_delta(self.index, self.call))
        fragment = self._new_arguments(text)
        if fragment:
            self.call.arguments += fragment
            out.append(arguments_delta(self.index, fragment))

    def _new_arguments(self, text: str) -> str:
        s = self.scanner
        key = next((k for k in ARGUMENT_KEYS if k in s.members), None)
        if key is None:
            return "{}" if s.end is not None and not self.call.arguments else ""
        start, end = s.members[key]
        kind = s.value_kind(text, key)
        if kind == "container":
            return text[start + len(self.call.arguments):end if end is not None else len(text)]
        if end is None or self.call.arguments:
            return ""
        raw = text[start:end]
        if kind == "string":  # arguments written as a JSON string holding the JSON
            try:
                return json.loads(raw)
            except json.JSONDecodeError:
                self.bad = True
                return ""
        return raw

    def valid(self) -> bool:
        if self.bad or self.call is None or not self.done:
            return False
        try:
            json.loads(self.call.arguments)
        except json.JSONDecodeError:
            return False
        return True


class NamedToolCall(ToolCallExtractor):
    """tool_choice naming a function: the grammar made the whole content its arguments."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self._start: int | None = None

    def update(self, text: str, final: bool) -> list[dict]:
        out: list[dict] = []
        if self._start is None:
            i = skip_ws(text, 0)
            if i >= len(text):
                self.malformed = final
                return out
            self._start = i
            self.calls.append(ToolCall(new_call_id(), self.name))
            out.append(announce_delta(0, self.calls[0]))
        call = self.calls[0]
        fragment = text[self._start + len(call.arguments):]
        if fragment:
            call.arguments += fragment
            out.append(arguments_delta(0, fragment))
        if final:
            try:
                json.loads(call.arguments)
            except json.JSONDecodeError:
                self.malformed = True
        return out


class RequiredToolCalls(ToolCallExtractor):
    """tool_choice "required": the grammar made the content a JSON array of
    {"name": ..., "parameters": {...}} objects, one per call."""

    def __init__(self) -> None:
        super().__init__()
        self._pos = 0
        self._state = "start"
        self._object: CallObject | None = None

    def update(self, text: str, final: bool) -> list[dict]:
        out: list[dict] = []
        while self._state not in ("done", "bad"):
            if self._state == "object":
                obj = self._object
                obj.progress(text, final, self.calls, out)
                if obj.bad:
                    self._state = "bad"
                elif obj.done:
                    self._pos, self._state = obj.scanner.end, "after"
                    continue
                break
            i = skip_ws(text, self._pos)
            if i >= len(text):
                break
            c, state = text[i], self._state
            if state == "start" and c == "[":
                self._pos, self._state = i + 1, "first"
            elif state in ("first", "next") and c == "{":
                self._object = CallObject(i, len(self.calls))
                self._state = "object"
            elif state == "after" and c == ",":
                self._pos, self._state = i + 1, "next"
            elif state == "after" and c == "]":
                self._pos, self._state = i + 1, "done"
            else:
                self._state = "bad"
        if final:
            self.malformed = self._state != "done" or not all(
                _valid_json(call.arguments) for call in self.calls) or not self.calls
        return out


def _valid_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True
