"""What a request body may ask of this server, field by field: a field vLLM's server knows is
either served or refused with a 400 that names it and says why; never accepted and dropped.
Fields nobody knows are still accepted and ignored, as OpenAI's and vLLM's servers do.

The full table, field by field, is in docs/server.md."""
from __future__ import annotations

from typing import Any

from ember.entrypoints.openai.errors import OpenAIError
from ember.entrypoints.openai.protocol import MAX_LOGPROBS, ChatCompletionRequest, SamplingRequest
from ember.request_checks import FieldError, check_token_fields
from ember.sampling_params import SamplingParams

# vLLM's request fields Ember does not serve: name -> (values that ask for nothing, why not).
_UNSERVED: dict[str, tuple[tuple[Any, ...], str]] = {
    "truncate_prompt_tokens": ((None,), "prompt truncation is not implemented; shorten the prompt"),
    "truncation_side": ((None,), "prompt truncation is not implemented"),
    "bad_words": ((None, []), "bad-word blocking is not implemented; logit_bias bans single tokens"),
    "logprob_token_ids": ((None,), "logprobs of chosen token ids are not implemented; use logprobs/top_logprobs"),
    "prompt_embeds": ((None,), "prompt embeddings are not accepted; send text or token ids"),
    "priority": ((None, 0), "the scheduler is first-come first-served (no priority scheduling)"),
    "cache_salt": ((None,), "the prefix cache is not salted per request"),
    "kv_transfer_params": ((None,), "there is no disaggregated prefill / KV transfer"),
    "ec_transfer_params": ((None,), "there is no encoder-cache transfer"),
    "vllm_xargs": ((None,), "there are no custom request extensions"),
    "repetition_detection": ((None,), "repetition detection is not implemented"),
    "thinking_token_budget": ((None, -1), "thinking budgets are not implemented; use max_tokens"),
    "watermarking": ((None, False), "watermarking is not implemented"),
    "stream_interval": ((None, 1), "every token is streamed as it comes (an interval of 1)"),
    "guided_decoding_backend": ((None, "xgrammar", "auto"), "structured output always uses xgrammar"),
    "guided_whitespace_pattern": ((None,), "give the whitespace pattern in structured_outputs"),
    "logits_processors": ((None, []), "custom logits processors are not accepted over HTTP"),
    "early_stopping": ((None, False), "beam search runs to max_tokens or every beam's end (no early stopping)"),
    "mm_processor_kwargs": ((None, {}), "Ember serves text models only"),
    "routed_experts_prompt_start": ((None, 0), "Ember serves no mixture-of-experts models"),
    "return_token_offsets": ((None, False), "only the /render endpoints return offsets, and Ember has none"),
    "return_prompt_text": ((None, False), "not implemented; POST /tokenize with the messages renders the prompt"),
}
_UNSERVED_CHAT: dict[str, tuple[tuple[Any, ...], str]] = {
    "echo": ((None, False), "chat echo (prepending the last message) is not implemented"),
    "documents": ((None,), "documents are not passed to chat templates"),
    "media_io_kwargs": ((None, {}), "Ember serves text models only"),
    "reasoning_effort": ((None,), "use chat_template_kwargs, e.g. {\"enable_thinking\": false}"),
    "include_reasoning": ((None, True), "the reasoning is always returned when --reasoning-parser splits it"),
    "parallel_tool_calls": ((None, True), "every tool call the model writes is returned"),
}
# With use_beam_search, sampling controls that beam search (vLLM's too) does not apply.
_NOT_WITH_BEAMS = ("top_p", "top_k", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty",
                   "seed", "stop", "stop_token_ids", "min_tokens", "logit_bias", "allowed_token_ids",
                   "guided_json", "guided_regex", "guided_choice", "guided_grammar", "structured_outputs",
                   "prompt_logprobs")


def check_request(request: SamplingRequest, vocab_size: int) -> None:
    """400 for a field this server would otherwise not honour, or a value it cannot serve."""
    body = request.model_dump(exclude_unset=True)
    table = {**_UNSERVED, **(_UNSERVED_CHAT if isinstance(request, ChatCompletionRequest) else {})}
    for name, (harmless, why) in table.items():
        if name in body and body[name] not in harmless:
            raise OpenAIError(f"{name} is not supported by Ember: {why}.", param=name)
    if request.stream_options is not None and not request.stream:
        raise OpenAIError("stream_options can only be given with stream: true.", param="stream_options")
    for name in ("logprobs", "top_logprobs", "prompt_logprobs"):
        if getattr(request, name, None) == -1:
            raise OpenAIError(f"{name} -1 (the whole vocabulary) is not served: at most {MAX_LOGPROBS} per token "
                              "(vLLM's default --max-logprobs).", param=name)
    if getattr(request, "prompt_logprobs", None) is not None and request.stream:
        raise OpenAIError("prompt_logprobs are not available with stream: true.", param="prompt_logprobs")
    _check_token_lists(request, vocab_size)
    if request.use_beam_search:
        _check_beam_search(request, body)


def _check_token_lists(request: SamplingRequest, vocab_size: int) -> None:
    """logit_bias and allowed_token_ids, each error naming the bad key or id."""
    for name in ("logit_bias", "allowed_token_ids"):
        value = getattr(request, name)
        if value is None:
            continue
        try:
            check_token_fields(SamplingParams(**{name: value}), vocab_size)
        except FieldError as e:
            raise OpenAIError(str(e), param=e.field) from None
        except ValueError as e:
            raise OpenAIError(str(e), param=name) from None


def _check_beam_search(request: SamplingRequest, body: dict) -> None:
    for name in _NOT_WITH_BEAMS:
        if body.get(name) not in (None, False, [], {}):
            raise OpenAIError(f"{name} does not apply to beam search (use_beam_search): beams are ranked by the "
                              "model's own logprobs, up to an end-of-sequence token or max_tokens.", param=name)
    if request.logprobs not in (None, False):
        raise OpenAIError("logprobs are not returned with use_beam_search.", param="logprobs")
    if isinstance(request, ChatCompletionRequest) and request.tool_choice not in (None, "none", "auto"):
        raise OpenAIError("tool_choice \"required\" or a named function constrains the output with a grammar, "
                          "which beam search does not apply.", param="tool_choice")
    response_format = request.response_format or {}
    if response_format.get("type", "text") != "text":
        raise OpenAIError("response_format does not apply to beam search.", param="response_format")
