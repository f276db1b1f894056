"""POST /v1/completions: prompts as a string, strings, token ids or lists of token ids; n
samples each (choice index = prompt index * n + sample index); `echo` (with the prompt's
logprobs when `logprobs` is set, and `max_tokens: 0` to only score the prompt, as evaluation
harnesses do); streaming as server-sent events."""
from __future__ import annotations

import time
import uuid
from typing import AsyncIterator

from fastapi import Request
from fastapi.responses import Response

from ember.entrypoints.openai import beam_search
from ember.entrypoints.openai.errors import OpenAIError
from ember.entrypoints.openai.logprobs import completion_logprobs, prompt_logprobs_json
from ember.entrypoints.openai.protocol import (CompletionChoice, CompletionLogprobs, CompletionRequest,
                                               CompletionResponse, UsageInfo)
from ember.entrypoints.openai.response_extras import ResponseExtras
from ember.entrypoints.openai.sampling import compile_structured
from ember.entrypoints.openai.serving import EnginePrompt, ServingContext, close_all, final_outputs, merge
from ember.entrypoints.openai.streaming import ChoiceProgress, SSEResponse, sse
from ember.outputs import CompletionOutput, RequestOutput


async def create_completion(ctx: ServingContext, request: CompletionRequest, raw_request: Request) -> Response:
    model = ctx.check_model(request.model)
    ctx.check_fields(request)
    if request.suffix is not None:
        raise OpenAIError("suffix is not supported: Ember serves no fill-in-the-middle models.", param="suffix")
    prompts = _engine_prompts(ctx, request)
    # max_tokens 0 with echo scores the prompt alone: generate one token, show none.
    score_only = request.echo and request.max_tokens == 0
    prompt_logprobs = request.prompt_logprobs
    if request.echo and request.logprobs is not None:
        prompt_logprobs = max(prompt_logprobs or 0, request.logprobs)
    params = [ctx.sampling_params(request, p, 1 if score_only else request.max_tokens, request.logprobs,
                                  prompt_logprobs) for p in prompts]
    shape = _Shape(ctx, request, prompts, model, score_only)
    await compile_structured(ctx.llm, params)
    streams = await beam_search.submit(ctx, request, shape.id, prompts, params, stream=bool(request.stream))
    if request.stream:
        return SSEResponse(shape.events(merge(streams)), on_close=lambda: close_all(streams))
    finals = await final_outputs(raw_request, streams)
    return Response(shape.response(finals).model_dump_json(), media_type="application/json")


def _engine_prompts(ctx: ServingContext, request: CompletionRequest) -> list[EnginePrompt]:
    prompt = request.prompt
    if isinstance(prompt, str):
        return [ctx.tokenize(prompt, request.add_special_tokens)]
    if not prompt:
        raise OpenAIError("prompt must not be empty.", param="prompt")
    if isinstance(prompt[0], int):
        return [ctx.from_token_ids(prompt)]
    if isinstance(prompt[0], str):
        return [ctx.tokenize(p, request.add_special_tokens) for p in prompt]
    return [ctx.from_token_ids(p) for p in prompt]


class _Shape:
    """Turns engine outputs into this request's response or stream chunks."""

    def __init__(self, ctx: ServingContext, request: CompletionRequest, prompts: list[EnginePrompt],
                 model: str, score_only: bool):
        self.ctx, self.request, self.prompts, self.model = ctx, request, prompts, model
        self.score_only = score_only
        self.id = f"cmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.extras = ResponseExtras(ctx.response_options, request, [p.token_ids for p in prompts], request.n)

    def _index(self, prompt_index: int, sample: CompletionOutput) -> int:
        return prompt_index * self.request.n + sample.index

    def _logprobs(self, prompt_index: int, prompt_logprobs: list | None, echo: bool,
                  token_ids: list[int], entries: list, text_offset: int) -> CompletionLogprobs | None:
        if self.request.logprobs is None:
            return None
        lp = CompletionLogprobs()
        if echo:
            completion_logprobs(self.prompts[prompt_index].token_ids, prompt_logprobs or [],
                                self.ctx.tokenizer, text_offset, into=lp, as_ids=self.extras.tokens_as_ids)
        if not self.score_only:
            completion_logprobs(token_ids, entries, self.ctx.tokenizer, text_offset, into=lp,
                                as_ids=self.extras.tokens_as_ids)
        return lp

    def response(self, finals: list[RequestOutput]) -> CompletionResponse:
        choices = []
        for i, output in enumerate(finals):
            prefix = self.prompts[i].text if self.request.echo else ""
            for sample in output.outputs:
                text = "" if self.score_only else sample.text
                choices.append(CompletionChoice(
                    index=self._index(i, sample), text=prefix + text,
                    logprobs=self._logprobs(i, output.prompt_logprobs, self.request.echo, sample.token_ids,
                                            sample.logprobs or [], 0),
                    finish_reason="length" if self.score_only else sample.finish_reason,
                    stop_reason=None if self.score_only else sample.stop_reason,
                    prompt_logprobs=(prompt_logprobs_json(output.prompt_logprobs)
                                     if self.request.prompt_logprobs is not None else None)))
        choices.sort(key=lambda c: c.index)
        return self.extras.response(CompletionResponse(id=self.id, created=self.created, model=self.model,
                                                       choices=choices, usage=self._usage(finals)), finals)

    def _usage(self, finals: list[RequestOutput]) -> UsageInfo:
        usage = self.extras.usage(finals)
        if self.score_only:
            usage.completion_tokens, usage.total_tokens = 0, usage.prompt_tokens
        return usage

    def _chunk(self, choice: CompletionChoice) -> str:
        return sse(self.extras.chunk(CompletionResponse(id=self.id, created=self.created, model=self.model,
                                                        choices=[choice])))

    async def events(self, outputs: AsyncIterator[tuple[int, RequestOutput]]) -> AsyncIterator[str]:
        progress: dict[int, ChoiceProgress] = {}
        offsets: dict[int, int] = {}  # next logprobs text_offset per choice
        prompt_logprobs: dict[int, list] = {}  # per prompt: sent once, with its first delta
        async for i, output in outputs:
            self.extras.observe(i, output)
            if output.prompt_logprobs is not None:
                prompt_logprobs[i] = output.prompt_logprobs
            for sample in output.outputs:
                index = self._index(i, sample)
                first = index not in progress
                state = progress.setdefault(index, ChoiceProgress())
                if state.finished:
                    continue
                echo = self.request.echo and first
                text, entries, finish = state.advance(sample)
                if self.score_only:
                    text, entries = "", []
                text = (self.prompts[i].text if echo else "") + text
                lp = self._logprobs(i, prompt_logprobs.get(i), echo, sample.token_ids, entries,
                                    offsets.get(index, 0))
                if lp is not None and lp.tokens:
                    offsets[index] = lp.text_offset[-1] + len(lp.tokens[-1])
                if text or finish or (lp is not None and lp.tokens):
                    yield self._chunk(CompletionChoice(
                        index=index, text=text, logprobs=lp,
                        finish_reason=("length" if self.score_only else finish) if finish else None,
                        stop_reason=None if self.score_only else sample.stop_reason))
        if self.extras.include_usage:
            usage = self.extras.usage_so_far()
            if self.score_only:
                usage.completion_tokens, usage.total_tokens = 0, usage.prompt_tokens
            yield sse(CompletionResponse(id=self.id, created=self.created, model=self.model, choices=[],
                                         usage=usage))
