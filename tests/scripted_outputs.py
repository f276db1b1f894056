"""Scripted model outputs: chosen chat prompts produce a fixed text, through the real engine,
sampler, parsers and server.

`ScriptedOutputs(scripts)` maps a trigger to an output text; given to the server as its chat
constraint hook (tests/hooked_server.py), a chat request whose rendered prompt contains a
trigger (the one that occurs last, when several do) gets the grammar that admits exactly that
output text (then end-of-sequence), from its first token on, in place of any other constraint.
Whatever the model's weights, the output is that text (the tokens that spell it are the
model's choice). The feature tests use it to script tool calls and reasoning."""
from __future__ import annotations

from dataclasses import dataclass

from ember.structured.grammar import literal_grammar
from ember.structured.params import GuidedDecodingParams


@dataclass(frozen=True)
class ScriptedOutputs:
    scripts: dict[str, str]

    def __call__(self, prompt: str) -> GuidedDecodingParams | None:
        # The trigger that occurs last wins (in a conversation, the newest turn's); then the longest.
        found = [(prompt.rfind(trigger), len(trigger), output) for trigger, output in self.scripts.items()
                 if trigger in prompt]
        if not found:
            return None
        return GuidedDecodingParams(grammar=literal_grammar(max(found)[2]))
