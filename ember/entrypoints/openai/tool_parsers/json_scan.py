"""Scanning JSON as it streams in: where a value starts and ends in the text, and the members
of an object, without waiting for the whole document. Each scanner keeps its position and reads
only the text added since its last call, so a long argument costs linear time.

Positions are indices into the caller's text, which only ever grows between calls. The scanners
check the structure (brackets, strings, separators); the finished values are checked with
json.loads by their users."""
from __future__ import annotations

import json

_WS = " \t\r\n"
# Characters a JSON text may hold outside its strings.
_SCALAR_CHARS = frozenset("-+.0123456789eEtruefalsn")
_BETWEEN_STRINGS = _SCALAR_CHARS | frozenset(_WS + ",:")


def skip_ws(s: str, i: int) -> int:
    while i < len(s) and s[i] in _WS:
        i += 1
    return i


def string_end(s: str, i: int) -> int | None:
    """s[i] is '"': the index after the closing quote, None if the text ends first, -1 if the
    string is malformed (a raw control character)."""
    j = i + 1
    while j < len(s):
        c = s[j]
        if c == "\\":
            j += 2
            continue
        if c == '"':
            return j + 1
        if c < " ":
            return -1
        j += 1
    return None


class ValueTracker:
    """Finds where the JSON value starting at `start` ends."""

    def __init__(self, start: int):
        self.start = start
        self.pos = start
        self.kind: str | None = None   # "container", "string" or "scalar"
        self.depth = 0
        self.in_string = False
        self.escape = False
        self.end: int | None = None
        self.error = False

    def feed(self, s: str, final: bool) -> None:
        if self.end is not None or self.error:
            return
        i, n = self.pos, len(s)
        if self.kind is None:
            if i >= n:
                return
            c = s[i]
            if c in "{[":
                self.kind, self.depth = "container", 1
            elif c == '"':
                self.kind, self.in_string = "string", True
            elif c in "-0123456789tfn":
                self.kind = "scalar"
            else:
                self.error = True
                return
            i += 1
        while i < n:
            c = s[i]
            if self.in_string:
                if self.escape:
                    self.escape = False
                elif c == "\\":
                    self.escape = True
                elif c == '"':
                    self.in_string = False
                    if self.kind == "string":
                        self.end = i + 1
                        return
            elif self.kind == "scalar":
                if c in ",}]" or c in _WS:
                    self.end = i
                    return
                if c not in _SCALAR_CHARS:
                    self.error = True
                    return
            elif c == '"':
                self.in_string = True
            elif c in "{[":
                self.depth += 1
            elif c in "}]":
                self.depth -= 1
                if self.depth == 0:
                    self.end = i + 1
                    return
            elif c not in _BETWEEN_STRINGS:
                self.error = True  # e.g. a closing tag inside an unfinished object
                return
            i += 1
        self.pos = i
        if final and self.kind == "scalar":
            self.end = n


class ObjectScanner:
    """The top-level members of the JSON object starting at `start` (at or after whitespace):
    `members[key] = [value_start, value_end or None while incomplete]`; `end` once the object
    closed; `error` when the text cannot be a JSON object."""

    def __init__(self, start: int):
        self.pos = start
        self.state = "start"
        self.members: dict[str, list] = {}
        self.end: int | None = None
        self.error = False
        self._key: str | None = None
        self._value: ValueTracker | None = None

    def _fail(self) -> None:
        self.state, self.error = "error", True

    def feed(self, s: str, final: bool) -> None:
        while self.state not in ("done", "error"):
            state = self.state
            if state == "value":
                self._value.feed(s, final)
                if self._value.error:
                    return self._fail()
                if self._value.end is None:
                    return
                self.members[self._key][1] = self._value.end
                self.pos, self.state = self._value.end, "after_value"
                continue
            i = skip_ws(s, self.pos)
            if i >= len(s):
                return
            c = s[i]
            if state == "start":
                if c != "{":
                    return self._fail()
                self.pos, self.state = i + 1, "key_or_end"
            elif state in ("key_or_end", "key"):
                if c == "}" and state == "key_or_end":
                    self.pos = self.end = i + 1
                    self.state = "done"
                    continue
                if c != '"':
                    return self._fail()
                j = string_end(s, i)
                if j is None:
                    return
                if j < 0:
                    return self._fail()
                try:
                    self._key = json.loads(s[i:j])
                except json.JSONDecodeError:
                    return self._fail()
                self.pos, self.state = j, "colon"
            elif state == "colon":
                if c != ":":
                    return self._fail()
                self.pos, self.state = i + 1, "value_start"
            elif state == "value_start":
                self._value = ValueTracker(i)
                self.members[self._key] = [i, None]
                self.pos, self.state = i, "value"
            elif state == "after_value":
                if c == ",":
                    self.pos, self.state = i + 1, "key"
                elif c == "}":
                    self.pos = self.end = i + 1
                    self.state = "done"
                else:
                    return self._fail()

    def value_kind(self, s: str, key: str) -> str | None:
        span = self.members.get(key)
        if span is None or span[0] >= len(s):
            return None
        c = s[span[0]]
        return "container" if c in "{[" else "string" if c == '"' else "scalar"
