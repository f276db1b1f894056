"""use_beam_search on the server, as vLLM serves it: beam width best_of (or n), the n best beams
returned as the choices, each step one-token requests through AsyncLLM (see ember/beam_search.py).

A BeamSearchStream stands where the engine's RequestStream would: it yields one finished
RequestOutput (every beam's text and token ids; a stream sends it as one chunk per choice) and
`close()` cancels the search, which aborts the step requests in flight."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, AsyncIterator

from ember.beam_search import BeamSearchInstance
from ember.engine.async_engine import AsyncLLM
from ember.entrypoints.openai.protocol import SamplingRequest
from ember.outputs import Logprob, RequestOutput
from ember.sampling_params import BeamSearchParams, SamplingParams

if TYPE_CHECKING:
    from ember.entrypoints.openai.serving import ServingContext


def beam_search_params(request: SamplingRequest, params: SamplingParams) -> BeamSearchParams:
    """From the request's validated SamplingParams (max_tokens, temperature and ignore_eos with
    the server's defaults applied)."""
    return BeamSearchParams(beam_width=max(params.best_of, params.n), max_tokens=params.max_tokens,
                            ignore_eos=params.ignore_eos, temperature=params.temperature,
                            length_penalty=request.length_penalty)


class BeamSearchStream:
    def __init__(self, llm: AsyncLLM, request_id: str, prompt: dict, params: BeamSearchParams, count: int):
        self._llm, self._id, self._prompt, self._count = llm, request_id, prompt, count
        self._instance = BeamSearchInstance(prompt["prompt_token_ids"], params,
                                            set(llm.input_processor.eos_token_ids), llm.config.max_model_len)
        self._task = asyncio.ensure_future(self._search())
        self._done = False

    async def _search(self) -> RequestOutput:
        instance, step = self._instance, self._instance.params.step_params()
        while not instance.done:
            calls = [self._next_token(beam.tokens, step, f"{self._id}-step{instance.steps}-beam{k}")
                     for k, beam in enumerate(instance.beams)]
            instance.advance(list(await asyncio.gather(*calls)))
        return instance.as_request_output(self._id, self._prompt.get("prompt"), self._llm.tokenizer, self._count)

    async def _next_token(self, tokens: list[int], params: SamplingParams, request_id: str) -> dict[int, Logprob]:
        final = None
        async for output in self._llm.generate({"prompt_token_ids": tokens}, params, request_id):
            final = output
        return final.outputs[0].logprobs[-1]

    def __aiter__(self) -> AsyncIterator[RequestOutput]:
        return self._outputs()

    async def _outputs(self) -> AsyncIterator[RequestOutput]:
        if not self._done:
            self._done = True
            yield await self._task

    def close(self) -> None:
        """Cancel the search: the step requests' generators close, which aborts them."""
        self._task.cancel()


async def submit(ctx: "ServingContext", request: SamplingRequest, request_id: str, prompts: list,
                 params: list[SamplingParams], **options) -> list:
    """The engine streams of a request's prompts (`options` go to ServingContext.submit), or
    beam searches when it asks for use_beam_search."""
    if not request.use_beam_search:
        return await ctx.submit(request_id, prompts, params, **options)
    return [BeamSearchStream(ctx.llm, f"{request_id}-{i}", prompt.as_engine_input(),
                             beam_search_params(request, p), p.n) for i, (prompt, p) in enumerate(zip(prompts, params))]
