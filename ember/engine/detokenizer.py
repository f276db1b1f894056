"""Incremental detokenization and stop strings.

Each new token is decoded together with a few tokens before it, and only the text beyond
what those earlier tokens already produced is appended; a piece ending in U+FFFD is a
multi-byte character split across tokens and waits for the next token (vLLM's algorithm)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ember.engine.output_processor import SampleState

@dataclass
class DetokenizerState:
    """Offsets of vLLM's incremental detokenization (see Detokenizer.append)."""
    started: bool = False
    tokens: list[str] = field(default_factory=list)
    prefix_offset: int = 0
    read_offset: int = 0
    text: str = ""


# How many prompt tokens seed the window, so a first output token like "▁Hello" gets the
# leading space it would have in context.
_PROMPT_CONTEXT = 5


class Detokenizer:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        # Each new token's string, by skip_special_tokens then id: the tokenizer's own lookup
        # costs ~10 us a call (fast tokenizers rebuild their special-id set each time), once per
        # sequence per step.
        self._token_strings: dict[bool, dict[int, str | None]] = {False: {}, True: {}}
        # A lone token's text, by (special tokens decoded plainly, token): see _lone_token_text.
        self._single_token_texts: dict[tuple[bool, str], str] = {}

    def _token(self, token_id: int, skip_special_tokens: bool) -> str | None:
        strings = self._token_strings[skip_special_tokens]
        if token_id not in strings:
            tokens = self._tokens([token_id], skip_special_tokens)  # empty when skipped
            strings[token_id] = tokens[0] if tokens else None
        return strings[token_id]

    def _tokens(self, ids: list[int], skip_special_tokens: bool) -> list[str]:
        tokens = self.tokenizer.convert_ids_to_tokens(ids, skip_special_tokens=skip_special_tokens)
        return [t for t in tokens if t is not None]

    def _lone_token_text(self, token: str, plain: bool) -> str:
        # A sequence's prefix window is most often its one previous token: its text is looked
        # up, so a step decodes one window rather than two.
        key = (plain, token)
        text = self._single_token_texts.get(key)
        if text is None:
            text = self._single_token_texts[key] = self._decode([token], plain)
        return text

    def _to_string(self, tokens: list[str], plain: bool) -> str:
        if not tokens:
            return ""
        if len(tokens) == 1:
            return self._lone_token_text(tokens[0], plain)
        return self._decode(tokens, plain)

    def _decode(self, tokens: list[str], plain: bool) -> str:
        if plain:
            return self.tokenizer.convert_tokens_to_string(tokens)
        # Special tokens joined without spaces, the rest decoded as usual.
        special = set(self.tokenizer.all_special_tokens)
        parts, run = [], []
        for t in tokens:
            if t in special:
                if run:
                    parts.append(self.tokenizer.convert_tokens_to_string(run))
                    run = []
                parts.append(t)
            else:
                run.append(t)
        if run:
            parts.append(self.tokenizer.convert_tokens_to_string(run))
        return "".join(parts)

    def append(self, seq: SampleState, token_id: int) -> str:
        """Decode `token_id`, newly appended to `seq`; returns the text it added."""
        return self.extend(seq, (token_id,))

    def extend(self, seq: SampleState, token_ids) -> str:
        """Decode `token_ids`, newly appended to `seq`, one after the other as if each came in
        its own step; returns the text they added."""
        state = seq.detok
        skip = seq.params.skip_special_tokens
        if not state.started:
            state.started = True
            context = self._tokens(seq.prompt_token_ids[-_PROMPT_CONTEXT - 1:], skip)
            state.tokens = context
            state.prefix_offset = max(len(context) - _PROMPT_CONTEXT, 0)
            state.read_offset = len(context)
        plain = skip or seq.params.spaces_between_special_tokens
        tokens, start, read = state.tokens, state.prefix_offset, state.read_offset
        new_text = ""
        for token_id in token_ids:
            token = self._token(token_id, skip)
            if token is not None:
                tokens.append(token)
            prefix_text = self._to_string(tokens[start:read], plain)
            full_text = self._to_string(tokens[start:], plain)
            if len(full_text) <= len(prefix_text) or full_text.endswith("\ufffd"):
                continue
            new_text += full_text[len(prefix_text):]
            start, read = read, len(tokens)
        state.prefix_offset, state.read_offset = start, read
        state.text += new_text
        return new_text


def find_stop_string(seq: SampleState, new_chars: int) -> str | None:
    """If a stop string now appears in the text (it can only end within the new characters),
    cut the text there and return it."""
    text = seq.detok.text
    for stop in seq.params.stop:
        start = max(0, len(text) - new_chars - len(stop) + 1)
        idx = text.find(stop, start)
        if idx != -1:
            end = idx + len(stop) if seq.params.include_stop_str_in_output else idx
            seq.detok.text = text[:end]
            return stop
    return None


def visible_length(seq: SampleState) -> int:
    """How much of the text is safe to show now: while running, what could still become a stop
    string is held back."""
    length = len(seq.detok.text)
    if seq.is_finished or not seq.params.stop:
        return length
    return max(0, length - (max(len(s) for s in seq.params.stop) - 1))


def visible_text(seq: SampleState) -> str:
    return seq.detok.text[:visible_length(seq)]
