"""Admission: what a request body may ask for, checked before anything reaches the engine, each
refusal a 400 naming the field. The engine re-checks what it must (prompt length, token ids,
the KV cache), so these checks are about answering early and clearly, and about keeping values
that would overflow a tensor or a generator (seeds, top_k) out of the engine thread.

Limits that are flags: --max-n (n and best_of), --max-queued-requests (a batch of prompts
larger than the whole queue can never be admitted). Fixed ones: at most 64 stop strings of at
most 1,000 characters each (vLLM's default --max-logprobs 20 is in protocol.py)."""
from __future__ import annotations

from ember.entrypoints.openai.errors import OpenAIError
from ember.entrypoints.openai.protocol import SamplingRequest

DEFAULT_MAX_N = 16
DEFAULT_MAX_QUEUED_REQUESTS = 1024
DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024
MAX_STOP_STRINGS = 64
MAX_STOP_STRING_CHARS = 1000
# Seeds seed a torch.Generator (a 64-bit value); top_k goes into an int64 tensor.
_SEED_RANGE = (-(2**63), 2**64 - 1)
_INT64_MAX = 2**63 - 1


def check_sampling_fields(request: SamplingRequest, max_n: int, vocab_size: int) -> None:
    """Range checks of the fields completions and chat share (SamplingParams checks the rest)."""
    for name in ("n", "best_of"):
        value = getattr(request, name)
        if value is not None and value > max_n:
            raise OpenAIError(f"{name} must be at most {max_n} on this server (--max-n), got {value}.", param=name)
    stop = [request.stop] if isinstance(request.stop, str) else (request.stop or [])
    if len(stop) > MAX_STOP_STRINGS:
        raise OpenAIError(f"stop may hold at most {MAX_STOP_STRINGS} strings, got {len(stop)}.", param="stop")
    longest = max((len(s) for s in stop), default=0)
    if longest > MAX_STOP_STRING_CHARS:
        raise OpenAIError(f"Each stop string may be at most {MAX_STOP_STRING_CHARS} characters long, got one "
                          f"of {longest}.", param="stop")
    if any(not 0 <= t < vocab_size for t in request.stop_token_ids or ()):
        raise OpenAIError(f"stop_token_ids must be in [0, {vocab_size}).", param="stop_token_ids")
    if request.seed is not None and not _SEED_RANGE[0] <= request.seed <= _SEED_RANGE[1]:
        raise OpenAIError("seed must fit in 64 bits.", param="seed")
    for name in ("top_k", "min_tokens", "max_tokens"):
        value = getattr(request, name)
        if value is not None and abs(value) > _INT64_MAX:
            raise OpenAIError(f"{name} is out of range, got {value}.", param=name)


def check_context(prompt_len: int, max_tokens: int | None, max_model_len: int, kv_cache_tokens: int) -> None:
    """The prompt plus max_tokens must fit the context, and the whole KV cache: a request that
    could never fit even alone is refused now rather than left waiting for ever. A prompt
    alone too long for max_model_len is the engine's to refuse (vLLM's message)."""
    if max_tokens is not None and prompt_len < max_model_len < prompt_len + max_tokens:
        raise OpenAIError(f"This model's maximum context length is {max_model_len} tokens. However, you requested "
                          f"{prompt_len + max_tokens} tokens ({prompt_len} in the prompt, {max_tokens} for the "
                          f"completion). Lower max_tokens or shorten the prompt.")
    if kv_cache_tokens < max_model_len:
        if prompt_len >= kv_cache_tokens:
            raise OpenAIError(f"The prompt is {prompt_len} tokens long, but the whole KV cache of this server holds "
                              f"{kv_cache_tokens} tokens, which leaves no room to generate.", param="prompt")
        if max_tokens is not None and prompt_len + max_tokens > kv_cache_tokens:
            raise OpenAIError(f"This request needs up to {prompt_len + max_tokens} tokens of KV cache ({prompt_len} "
                              f"in the prompt, max_tokens {max_tokens}), but the whole cache holds "
                              f"{kv_cache_tokens}: it could never run.", param="max_tokens")


def check_batch(num_prompts: int, max_queued_requests: int | None) -> None:
    if max_queued_requests is not None and num_prompts > max_queued_requests:
        raise OpenAIError(f"A request may hold at most {max_queued_requests} prompts on this server "
                          f"(--max-queued-requests), got {num_prompts}.", param="prompt")
