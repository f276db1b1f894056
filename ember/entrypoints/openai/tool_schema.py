"""The JSON schema tool_choice "required" imposes: an array of {"name", "parameters"} calls,
one alternative per function. A function's parameters schema may keep its own definitions
("$defs" or "definitions", as pydantic writes them) and refer to them from the schema's root
("#/$defs/X"); nested inside the array those references would point at nothing, so each
function's definitions move to the root of the combined schema, renamed apart, with its
references rewritten to match."""
from __future__ import annotations

from typing import Any

_DEF_KEYS = ("$defs", "definitions")


def required_calls_schema(functions: dict[str, dict]) -> dict:
    """`functions`: name -> parameters schema."""
    hoisted: dict[str, Any] = {}
    alternatives = []
    for i, (name, params) in enumerate(functions.items()):
        params, defs = _hoist(params, f"f{i}_")
        hoisted.update(defs)
        alternatives.append({"type": "object",
                             "properties": {"name": {"type": "string", "enum": [name]}, "parameters": params},
                             "required": ["name", "parameters"]})
    schema: dict[str, Any] = {"type": "array", "minItems": 1, "items": {"anyOf": alternatives}}
    if hoisted:
        schema["$defs"] = hoisted
    return schema


def _hoist(schema: dict, prefix: str) -> tuple[dict, dict]:
    """(the schema without its root definitions, those definitions renamed `prefix` + name),
    references to them rewritten to "#/$defs/<new name>"."""
    renames = {}
    for key in _DEF_KEYS:
        for name in (schema.get(key) or {}):
            renames[f"#/{key}/{name}"] = f"#/$defs/{prefix}{name}"
    if not renames:
        return schema, {}
    body = {k: v for k, v in schema.items() if k not in _DEF_KEYS}
    defs = {f"{prefix}{name}": _rewrite(sub, renames) for key in _DEF_KEYS for name, sub in (schema.get(key) or {}).items()}
    return _rewrite(body, renames), defs


def _rewrite(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: (_renamed(v, renames) if k == "$ref" and isinstance(v, str) else _rewrite(v, renames))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite(v, renames) for v in node]
    return node


def _renamed(ref: str, renames: dict[str, str]) -> str:
    """A reference to a definition, or to a path inside one ("#/$defs/X/properties/y")."""
    for old, new in renames.items():
        if ref == old or ref.startswith(old + "/"):
            return new + ref[len(old):]
    return ref
