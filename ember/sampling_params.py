"""SamplingParams: vLLM's fields, defaults and validation."""
from __future__ import annotations

import copy
import enum
from dataclasses import dataclass, field, fields
from typing import Any

from ember.structured.params import GuidedDecodingParams

# vLLM's newer name for the same thing.
StructuredOutputsParams = GuidedDecodingParams

_SAMPLING_EPS = 1e-5


class RequestOutputKind(enum.IntEnum):
    """What each output of a running request holds (vLLM's names)."""
    CUMULATIVE = 0  # everything so far, at every step
    DELTA = 1       # only what is new since the previous output
    FINAL_ONLY = 2  # one output, once the request finished


@dataclass
class SamplingParams:
    n: int = 1
    best_of: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False
    max_tokens: int | None = 16
    min_tokens: int = 0
    logprobs: int | None = None
    prompt_logprobs: int | None = None
    detokenize: bool = True
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    include_stop_str_in_output: bool = False
    # Structured output: a `GuidedDecodingParams` (see ember.structured), None when free.
    guided_decoding: GuidedDecodingParams | None = None
    # vLLM's newer spelling of guided_decoding; either may be given.
    structured_outputs: GuidedDecodingParams | None = None
    # Sampling restricted to these token ids (vLLM's field); None: the whole vocabulary.
    allowed_token_ids: list[int] | None = None
    # token id -> a value added to its logit before sampling (OpenAI's logit_bias; vLLM's
    # SamplingParams field, keys as ints; string keys of ints are accepted).
    logit_bias: dict[int, float] | None = None
    output_kind: RequestOutputKind = RequestOutputKind.CUMULATIVE
    # Token ids the engine treats as end-of-sequence besides stop_token_ids (from
    # generation_config.json); filled in by the engine, not by users.
    _eos_token_ids: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        self.stop = list(self.stop or [])
        self.stop_token_ids = list(self.stop_token_ids or [])
        if self.top_k is None:
            self.top_k = 0
        self.output_kind = RequestOutputKind(self.output_kind)
        if self.best_of is None:
            self.best_of = self.n
        self._structured_output()
        self._token_lists()
        self._validate()

    def _structured_output(self) -> None:
        given = [g for g in (self.guided_decoding, self.structured_outputs) if g is not None]
        if len(given) == 2 and given[0] is not given[1]:
            raise ValueError("Give guided_decoding or structured_outputs, not both.")
        spec = given[0] if given else None
        if isinstance(spec, dict):
            spec = GuidedDecodingParams(**spec)
        if spec is not None and not isinstance(spec, GuidedDecodingParams):
            raise ValueError(f"guided_decoding must be a GuidedDecodingParams, got {type(spec).__name__}.")
        self.guided_decoding = self.structured_outputs = spec

    def _token_lists(self) -> None:
        """allowed_token_ids and logit_bias: token ids as ints (the vocabulary bound is checked
        where it is known: the server, LLM.generate)."""
        if self.allowed_token_ids is not None:
            ids = list(self.allowed_token_ids)
            if not ids:
                raise ValueError("allowed_token_ids must not be empty (leave it out to allow every token).")
            bad = next((t for t in ids if not isinstance(t, int) or isinstance(t, bool) or t < 0), None)
            if bad is not None:
                raise ValueError(f"allowed_token_ids must hold non-negative integers, got {bad!r}.")
            self.allowed_token_ids = ids
        if self.logit_bias is not None:
            bias = {}
            for key, value in dict(self.logit_bias).items():
                try:
                    token = int(key)
                except (TypeError, ValueError):
                    raise ValueError(f"logit_bias keys must be token ids, got {key!r}.") from None
                if token < 0:
                    raise ValueError(f"logit_bias keys must be non-negative token ids, got {key!r}.")
                if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value \
                        or abs(value) == float("inf"):
                    raise ValueError(f"logit_bias[{key!r}] must be a finite number, got {value!r}.")
                bias[token] = float(value)
            self.logit_bias = bias or None

    def _validate(self) -> None:
        def bad(name: str, why: str):
            raise ValueError(f"{name} {why}, got {getattr(self, name)!r}.")

        if not isinstance(self.n, int) or self.n < 1:
            bad("n", "must be an integer >= 1")
        if self.best_of < self.n:
            bad("best_of", f"must be >= n ({self.n})")
        if not -2.0 <= self.presence_penalty <= 2.0:
            bad("presence_penalty", "must be in [-2, 2]")
        if not -2.0 <= self.frequency_penalty <= 2.0:
            bad("frequency_penalty", "must be in [-2, 2]")
        if not self.repetition_penalty > 0.0:
            bad("repetition_penalty", "must be > 0")
        if not self.temperature >= 0.0:
            bad("temperature", "must be >= 0")
        if not 0.0 < self.top_p <= 1.0:
            bad("top_p", "must be in (0, 1]")
        if not isinstance(self.top_k, int) or self.top_k < -1:
            bad("top_k", "must be -1 or 0 (disabled), or a positive integer")
        if not 0.0 <= self.min_p <= 1.0:
            bad("min_p", "must be in [0, 1]")
        if self.max_tokens is not None and (not isinstance(self.max_tokens, int) or self.max_tokens < 1):
            bad("max_tokens", "must be an integer >= 1")
        if not isinstance(self.min_tokens, int) or self.min_tokens < 0:
            bad("min_tokens", "must be an integer >= 0")
        if self.max_tokens is not None and self.min_tokens > self.max_tokens:
            bad("min_tokens", f"must be <= max_tokens ({self.max_tokens})")
        if self.logprobs is not None and (not isinstance(self.logprobs, int) or self.logprobs < 0):
            bad("logprobs", "must be a non-negative integer")
        if self.prompt_logprobs is not None and (
                not isinstance(self.prompt_logprobs, int) or self.prompt_logprobs < 0):
            bad("prompt_logprobs", "must be a non-negative integer")
        if any(not isinstance(s, str) or not s for s in self.stop):
            bad("stop", "must contain only non-empty strings")
        if any(not isinstance(t, int) or t < 0 for t in self.stop_token_ids):
            bad("stop_token_ids", "must contain only non-negative integers")
        if self.seed is not None and not isinstance(self.seed, int):
            bad("seed", "must be an integer")

    @property
    def greedy(self) -> bool:
        return self.temperature < _SAMPLING_EPS

    @property
    def normalized_top_k(self) -> int:
        """0 means no top-k (vLLM accepts both 0 and -1 for that)."""
        return max(self.top_k, 0)

    @property
    def all_stop_token_ids(self) -> set[int]:
        ids = set(self.stop_token_ids)
        if not self.ignore_eos:
            ids.update(self._eos_token_ids)
        return ids

    def clone(self, **changes: Any) -> "SamplingParams":
        new = copy.copy(self)
        new.stop = list(self.stop)
        new.stop_token_ids = list(self.stop_token_ids)
        new._eos_token_ids = list(self._eos_token_ids)
        for k, v in changes.items():
            setattr(new, k, v)
        return new

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls) if not f.name.startswith("_")]


@dataclass
class BeamSearchParams:
    """vLLM's BeamSearchParams, for LLM.beam_search (see ember/beam_search.py)."""
    beam_width: int
    max_tokens: int
    ignore_eos: bool = False
    temperature: float = 0.0
    length_penalty: float = 1.0
    # vLLM's field; beam search stops on end-of-sequence tokens and max_tokens only, so there
    # is never a stop string to include.
    include_stop_str_in_output: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.beam_width, int) or self.beam_width < 1:
            raise ValueError(f"beam_width must be an integer >= 1, got {self.beam_width!r}.")
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ValueError(f"max_tokens must be an integer >= 1, got {self.max_tokens!r}.")
        if not self.temperature >= 0.0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature!r}.")
        if self.include_stop_str_in_output:
            raise ValueError("include_stop_str_in_output: beam search has no stop strings (it ends on "
                             "end-of-sequence tokens and max_tokens).")

    def step_params(self) -> SamplingParams:
        """What each step asks of the engine: one token, and the candidates' logprobs."""
        return SamplingParams(n=1, max_tokens=1, temperature=self.temperature, logprobs=2 * self.beam_width,
                              ignore_eos=True, detokenize=False)
