"""GuidedDecodingParams: what a request's output must match, with vLLM's field names. Plain
data (no xgrammar here): `import ember` never loads the grammar engine."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# The constraint fields; exactly one is set.
KINDS = ("json", "regex", "choice", "grammar", "json_object")


@dataclass
class GuidedDecodingParams:
    """One of:
    - json: a JSON schema (dict, or its JSON text): the output is a JSON value valid for it;
    - regex: the output matches the regular expression (whole output);
    - choice: the output is exactly one of these strings;
    - grammar: an EBNF grammar (xgrammar / GBNF syntax, rule `root`; Lark syntax is also accepted);
    - json_object: the output is some JSON object (or array), as OpenAI's json_object mode.

    `start_after`: the constraint begins once this text has appeared in the output (the server
    sets it to "</think>" when a reasoning parser is on, so the model thinks freely first);
    None: from the first token. `backend`, `disable_any_whitespace`, `whitespace_pattern` and
    `disable_additional_properties` are accepted for vLLM compatibility: Ember always uses
    xgrammar and writes JSON with single spaces after ':' and ','."""
    json: dict | str | None = None
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None
    json_object: bool | None = None
    backend: str | None = None
    disable_any_whitespace: bool = False
    disable_additional_properties: bool = False
    whitespace_pattern: str | None = None
    start_after: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.json, str):
            try:
                self.json = json.loads(self.json)
            except json.JSONDecodeError as e:
                raise ValueError(f"The JSON schema is not valid JSON: {e}") from None
        if self.json is not None and not isinstance(self.json, dict):
            raise ValueError("A JSON schema must be a JSON object.")
        if self.json_object is False:
            self.json_object = None
        set_kinds = [k for k in KINDS if getattr(self, k) is not None]
        if len(set_kinds) != 1:
            raise ValueError("Give exactly one kind of structured output (json, regex, choice, grammar or "
                             f"json_object), got {', '.join(set_kinds) or 'none'}.")
        if self.choice is not None:
            if (not isinstance(self.choice, (list, tuple)) or not self.choice
                    or not all(isinstance(c, str) for c in self.choice)):
                raise ValueError("choice must be a non-empty list of strings.")
            self.choice = list(self.choice)
        for name in ("regex", "grammar"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"{name} must be a non-empty string.")
        if self.backend not in (None, "auto", "xgrammar"):
            raise ValueError(f"Structured output backend {self.backend!r} is not available; Ember uses xgrammar.")
        if self.start_after is not None and (not isinstance(self.start_after, str) or not self.start_after):
            raise ValueError("start_after must be a non-empty string.")

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    @classmethod
    def from_optional(cls, json: Any = None, regex: str | None = None, choice: list[str] | None = None,
                      grammar: str | None = None, json_object: bool | None = None,
                      **options: Any) -> "GuidedDecodingParams | None":
        """None when no constraint is given (vLLM's helper of the same name)."""
        if all(v is None for v in (json, regex, choice, grammar, json_object)) or json_object is False:
            return None
        return cls(json=json, regex=regex, choice=choice, grammar=grammar, json_object=json_object, **options)
