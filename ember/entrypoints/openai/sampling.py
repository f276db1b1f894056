"""A request body's sampling fields -> SamplingParams: one rule for completions and chat.

Fields left out of the body take the checkpoint's generation_config.json defaults; max_tokens
left out means "what the context leaves": max_model_len, or the whole KV cache where that is
smaller, minus the prompt (capped by generation_config's max_new_tokens, as vLLM does).
Invalid values raise SamplingParams' ValueError, which names the field (-> 400).

Structured output comes under the seeds' names (`response_format`, `guided_json`,
`guided_regex`, `guided_choice`, `guided_grammar`) or vLLM's newer `structured_outputs` object;
one kind per request."""
from __future__ import annotations

import asyncio
from typing import Any

from ember.entrypoints.openai.errors import OpenAIError
from ember.entrypoints.openai.field_support import check_request
from ember.entrypoints.openai.protocol import SamplingRequest
from ember.entrypoints.sampling_args import sampling_params_with
from ember.sampling_params import SamplingParams
from ember.structured.params import KINDS, GuidedDecodingParams

# Body fields that are SamplingParams fields of the same name.
_PASSED_THROUGH = ("n", "best_of", "temperature", "top_p", "top_k", "min_p", "repetition_penalty",
                   "presence_penalty", "frequency_penalty", "seed", "stop", "stop_token_ids",
                   "ignore_eos", "min_tokens", "skip_special_tokens", "spaces_between_special_tokens",
                   "include_stop_str_in_output", "allowed_token_ids", "logit_bias")
# vLLM's options of a structured_outputs object besides the constraint itself.
_STRUCTURED_OPTIONS = ("backend", "disable_any_whitespace", "disable_additional_properties", "whitespace_pattern")


def check_supported(request: SamplingRequest, vocab_size: int) -> None:
    """Refuse, rather than silently ignore, what this server does not do (field_support.py)."""
    check_request(request, vocab_size)


def structured_output(request: SamplingRequest) -> GuidedDecodingParams | None:
    """The request's constraint, from whichever fields carry it; 400 for a malformed one."""
    found: list[tuple[str, dict[str, Any]]] = []
    for name, kind in (("guided_json", "json"), ("guided_regex", "regex"), ("guided_choice", "choice"),
                       ("guided_grammar", "grammar")):
        if getattr(request, name) is not None:
            found.append((name, {kind: getattr(request, name)}))
    if request.response_format is not None:
        spec = _response_format(request.response_format)
        if spec is not None:
            found.append(("response_format", spec))
    if request.structured_outputs is not None:
        given = {k: v for k, v in request.structured_outputs.items()
                 if v is not None and not (k == "json_object" and v is False)}
        unknown = sorted(set(given) - set(KINDS) - set(_STRUCTURED_OPTIONS))
        if unknown:
            raise OpenAIError(f"structured_outputs: unsupported key(s) {', '.join(unknown)}; use one of "
                              f"{', '.join(KINDS)}.", param="structured_outputs")
        found.append(("structured_outputs", given))
    if not found:
        return None
    if len(found) > 1:
        raise OpenAIError("Give one kind of structured output per request, got "
                          f"{', '.join(name for name, _ in found)}.", param=found[1][0])
    name, fields = found[0]
    try:
        return GuidedDecodingParams(**fields)
    except (TypeError, ValueError) as e:
        raise OpenAIError(f"{name}: {e}", param=name) from None


def _response_format(fmt: dict[str, Any]) -> dict[str, Any] | None:
    kind = fmt.get("type", "text")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"json_object": True}
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = None
        if isinstance(spec, dict):  # OpenAI's {"name": ..., "schema": {...}}; vLLM also reads "json_schema"
            schema = spec.get("schema", spec.get("json_schema"))
        if schema is None:
            raise OpenAIError("response_format of type json_schema needs json_schema.schema.",
                              param="response_format")
        return {"json": schema}
    raise OpenAIError(f"response_format type {kind!r} is not supported; use text, json_object or json_schema.",
                      param="response_format")


async def compile_structured(llm, params: list[SamplingParams], from_tools: bool = False) -> None:
    """Compile the grammars off the event loop before the engine sees the requests (its compile
    is then a cache hit); an invalid constraint is a 400 now. `from_tools`: the constraint is
    tool_choice's, built from the tools' parameter schemas, so the error names `tools`."""
    seen = set()
    for p in params:
        if p.guided_decoding is not None and id(p.guided_decoding) not in seen:
            seen.add(id(p.guided_decoding))
            try:
                await asyncio.to_thread(llm.structured.compile, p)
            except ValueError as e:
                if from_tools:
                    raise OpenAIError(f"tools: a function's parameters: {e}", param="tools") from None
                raise OpenAIError(str(e), param=_param_of(p.guided_decoding)) from None


def _param_of(spec: GuidedDecodingParams) -> str:
    return {"json": "guided_json", "regex": "guided_regex", "choice": "guided_choice",
            "grammar": "guided_grammar", "json_object": "response_format"}[spec.kind]


def build_sampling_params(request: SamplingRequest, defaults: SamplingParams, max_new_tokens_default: int | None,
                          room: int, max_tokens: int | None, logprobs: int | None = None,
                          prompt_logprobs: int | None = None) -> SamplingParams:
    """`room`: tokens the context leaves after the prompt; `max_tokens`: what the request asked
    for (None: not given)."""
    overrides = {name: value for name in _PASSED_THROUGH if (value := getattr(request, name)) is not None}
    if max_tokens is None and room >= 1:
        max_tokens = room if max_new_tokens_default is None else min(max_new_tokens_default, room)
    overrides.update(max_tokens=max_tokens, logprobs=logprobs, prompt_logprobs=prompt_logprobs,
                     guided_decoding=structured_output(request))
    return sampling_params_with(defaults, overrides)


def with_constraint(params: SamplingParams, spec: GuidedDecodingParams | None) -> SamplingParams:
    return params.clone(guided_decoding=spec, structured_outputs=spec)
