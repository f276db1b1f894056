"""Test-only: make chosen chat prompts produce a fixed text, through the real engine, sampler,
parsers and server.

When the environment variable EMBER_TEST_SCRIPTED_OUTPUTS names a JSON file holding
{"trigger": "output text", ...}, a chat request whose rendered prompt contains a trigger (the
one that occurs last, when several do) gets the grammar that admits exactly that output text
(then end-of-sequence), from its first token on, in place of any other constraint. Whatever
the model's weights, the output is that text (the tokens that spell it are the model's choice).
The feature tests use it to script tool calls and reasoning; a server never has it set
otherwise, and it logs a warning when it does."""
from __future__ import annotations

import functools
import json
import logging
import os

from ember.structured.grammar import literal_grammar
from ember.structured.params import GuidedDecodingParams

ENV_VAR = "EMBER_TEST_SCRIPTED_OUTPUTS"

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def _scripts(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8") as f:
        scripts = json.load(f)
    logger.warning("%s is set: test-only scripted outputs for %d prompt trigger(s).", ENV_VAR, len(scripts))
    return scripts


def scripted_output(prompt: str) -> GuidedDecodingParams | None:
    path = os.environ.get(ENV_VAR)
    if not path:
        return None
    # The trigger that occurs last wins (in a conversation, the newest turn's); then the longest.
    found = [(prompt.rfind(trigger), len(trigger), output) for trigger, output in _scripts(path).items()
             if trigger in prompt]
    if not found:
        return None
    return GuidedDecodingParams(grammar=literal_grammar(max(found)[2]))
