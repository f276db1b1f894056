"""What crosses between the front end (tokenizer, detokenizer, request streams) and the engine
core (scheduler, KV blocks, model). Requests go in token ids; results come out as per-step
updates holding only what is new, so the cost of a step's message grows with the number of
sequences that advanced, never with how long they are (vLLM's delta outputs)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import msgspec

from ember.sampling_params import SamplingParams

# (token id, logprob, rank) of one candidate token.
LogprobEntry = tuple[int, float, int]


@dataclass
class EngineCoreRequest:
    """A tokenized, validated request: `params` already carries its end-of-sequence ids and a
    max_tokens that fits the context."""
    request_id: str
    prompt_token_ids: list[int]
    params: SamplingParams
    arrival_time: float


class SampleUpdate(msgspec.Struct, array_like=True, omit_defaults=True):
    """What one sample of one request got in one step."""
    request_id: str
    index: int
    token_ids: list[int] = []
    # Per new token, when logprobs were asked: (its logprob, the chosen token and the top-k).
    logprobs: list[tuple[float, list[LogprobEntry]]] | None = None
    # Entries for prompt positions computed this step (sample 0 only, when asked).
    prompt_logprobs: list[list[LogprobEntry]] | None = None
    # Set once the core finished the sample on a token: "stop" (an end-of-sequence or stop
    # token id), "length" or "abort". Stop strings are the front end's to find.
    finish_reason: str | None = None
    stop_reason: int | None = None
    num_cached_tokens: int = 0
    # With a sample's first token: when the core first scheduled it (time.monotonic(), which
    # every process on the host shares).
    first_scheduled_time: float | None = None
    # The request failed in the core (its grammar, say): every sample ends with this error.
    error: str | None = None


class CoreStats(msgspec.Struct, array_like=True):
    """The core's counters after a step, for the log line, /metrics and admission."""
    num_running: int = 0
    num_waiting: int = 0
    kv_blocks_used: int = 0
    kv_blocks_total: int = 1
    prompt_tokens_total: int = 0
    generation_tokens_total: int = 0
    prefix_cache_queries_total: int = 0
    prefix_cache_hits_total: int = 0
    num_preemptions_total: int = 0
    # Engine steps by the number of tokens they ran; the front end keeps the tally from each
    # StepResult's step_sizes (the core sends none of it).
    step_token_counts: dict[int, int] = {}

    @property
    def kv_cache_usage(self) -> float:
        return self.kv_blocks_used / self.kv_blocks_total


# ----- across the process boundary (core_process.py), as msgpack -----

class AddRequest(msgspec.Struct, tag=True, array_like=True):
    request_id: str
    prompt_token_ids: list[int]
    params: dict  # SamplingParams as plain values: see params_to_wire
    arrival_time: float


class Abort(msgspec.Struct, tag=True, array_like=True):
    request_ids: list[str]


class AbortSample(msgspec.Struct, tag=True, array_like=True):
    request_id: str
    index: int


class Stop(msgspec.Struct, tag=True, array_like=True):
    pass


class Ready(msgspec.Struct, tag=True, array_like=True):
    num_kv_blocks: int


class StepResult(msgspec.Struct, tag=True, array_like=True):
    updates: list[SampleUpdate]
    stats: CoreStats
    # Requests the core has taken in since it started: the front end counts those still on
    # their way for its admission bound.
    num_added: int
    # Tokens run by each step these results complete.
    step_sizes: list[int] = []


class RequestRejected(msgspec.Struct, tag=True, array_like=True):
    request_id: str
    error: str


class CoreDead(msgspec.Struct, tag=True, array_like=True):
    error: str


ToCore = AddRequest | Abort | AbortSample | Stop
FromCore = Ready | StepResult | RequestRejected | CoreDead


def params_to_wire(params: SamplingParams) -> dict:
    """SamplingParams as msgpack-able values; `structured_outputs` is the same object as
    `guided_decoding` and travels once."""
    wire = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)
            if f.name != "structured_outputs"}
    if params.guided_decoding is not None:
        wire["guided_decoding"] = dataclasses.asdict(params.guided_decoding)
    return wire


def params_from_wire(wire: dict) -> SamplingParams:
    eos = wire.pop("_eos_token_ids", [])
    params = SamplingParams(**wire)
    params._eos_token_ids = eos
    return params


def to_wire(request: EngineCoreRequest) -> AddRequest:
    return AddRequest(request.request_id, request.prompt_token_ids, params_to_wire(request.params),
                      request.arrival_time)


def from_wire(add: AddRequest) -> EngineCoreRequest:
    return EngineCoreRequest(add.request_id, add.prompt_token_ids, params_from_wire(add.params), add.arrival_time)
