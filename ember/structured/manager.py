"""The engine's side of structured output: one grammar matcher per constrained sequence, the
token bitmask of each step's constrained rows, and advancing the matchers as tokens arrive.

The engine runs steps synchronously while any constrained sequence is unfinished (see
`_needs_exact_history` in llm_engine.py), so a matcher has seen every earlier token when its
next bitmask is filled. Requests without a constraint never reach this module's work."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import torch

from ember.sampling_params import SamplingParams
from ember.structured.grammar import GrammarBackend
from ember.worker.step_input import GrammarBitmask, StepInput

logger = logging.getLogger(__name__)


@dataclass
class _Constraint:
    matcher: object                 # xgrammar.GrammarMatcher
    # While not None: the text that must appear in the output before the grammar applies, and
    # the output bytes seen so far that could still be the start of it.
    start_after: bytes | None
    tail: bytes = b""
    done: bool = False              # grammar finished (or abandoned): no more masking


class StructuredOutputs:
    def __init__(self, get_tokenizer: Callable[[], object | None], vocab_size: int, eos_token_ids: list[int]):
        self.vocab_size = vocab_size
        self.backend = GrammarBackend(get_tokenizer, vocab_size, eos_token_ids)
        self._constraints: dict[int, _Constraint] = {}  # seq_id ->

    def compile(self, params: SamplingParams):
        """Check (and compile, once: the compiler caches) a request's constraint. ValueError
        (-> 400) when it is invalid. Safe to call from another thread."""
        return self.backend.compile(params.guided_decoding)

    def add(self, seq_id: int, params: SamplingParams) -> None:
        import xgrammar

        spec = params.guided_decoding
        stop = sorted(params.all_stop_token_ids) or None
        matcher = xgrammar.GrammarMatcher(self.compile(params), override_stop_tokens=stop)
        start_after = spec.start_after.encode() if spec.start_after else None
        self._constraints[seq_id] = _Constraint(matcher, start_after)

    def bitmask(self, step: StepInput, live_seq_ids) -> GrammarBitmask | None:
        """The allowed tokens of this step's constrained rows (None when there are none)."""
        for seq_id in [s for s in self._constraints if s not in live_seq_ids]:
            del self._constraints[seq_id]  # finished or aborted
        if not self._constraints:
            return None
        rows = [(c.seq_id, con) for c in step.chunks if c.sample
                and (con := self._constraints.get(c.seq_id)) is not None
                and not con.done and con.start_after is None]
        if not rows:
            return None
        width = (self.backend.tokenizer_info.vocab_size + 31) // 32
        mask = torch.full((len(rows), width), -1, dtype=torch.int32)
        for i, (_, con) in enumerate(rows):
            con.matcher.fill_next_token_bitmask(mask, i)
        return GrammarBitmask([seq_id for seq_id, _ in rows], mask)

    def accept(self, seq_id: int, token_id: int) -> None:
        """The sequence's sampled token: advance its matcher."""
        con = self._constraints.get(seq_id)
        if con is None or con.done:
            return
        if con.start_after is not None:
            self._watch_for_start(con, token_id)
            return
        if not con.matcher.accept_token(token_id):
            # Only when a token the mask allowed is refused (e.g. min_tokens banned every stop
            # token the grammar allowed): stop constraining rather than fail the request.
            logger.warning("Structured output: token %d does not fit the grammar; the rest of this "
                           "output is unconstrained.", token_id)
            con.done = True
        elif con.matcher.is_terminated():
            con.done = True

    def _watch_for_start(self, con: _Constraint, token_id: int) -> None:
        text = con.tail + self.backend.token_bytes(token_id)
        at = text.find(con.start_after)
        if at < 0:
            con.tail = text[-(len(con.start_after) - 1):] if len(con.start_after) > 1 else b""
            return
        rest = text[at + len(con.start_after):]
        con.start_after, con.tail = None, b""
        # The token that completed the marker may carry the first bytes after it.
        if rest and not con.matcher.accept_string(rest):
            logger.warning("Structured output: the text after the reasoning does not fit the grammar; "
                           "the rest of this output is unconstrained.")
            con.done = True
