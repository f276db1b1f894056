"""What the completion and chat endpoints share: the served model, prompt preparation, handing
prompts to the engine, and waiting for (or merging) their outputs while watching the client."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import AsyncIterator, Callable

from fastapi import Request

from ember.engine.async_engine import AsyncLLM, RequestStream
from ember.entrypoints.openai import admission
from ember.entrypoints.openai.cli_args import ChatFeatures, ResponseOptions
from ember.entrypoints.openai.errors import OpenAIError
from ember.entrypoints.openai.protocol import PromptTokenUsageInfo, SamplingRequest, UsageInfo
from ember.entrypoints.openai.sampling import build_sampling_params, check_supported
from ember.outputs import RequestOutput
from ember.sampling_params import RequestOutputKind, SamplingParams
from ember.structured.params import GuidedDecodingParams

logger = logging.getLogger(__name__)

_LOG_CHARS = 200


@dataclass
class EnginePrompt:
    text: str
    token_ids: list[int]

    def as_engine_input(self) -> dict:
        return {"prompt": self.text, "prompt_token_ids": self.token_ids}


@dataclass
class ServingContext:
    llm: AsyncLLM
    tokenizer: object
    vocab_size: int
    model_names: list[str]
    max_model_len: int
    # The most tokens one sequence can hold: max_model_len, or the whole KV cache if smaller.
    sequence_capacity: int
    kv_cache_tokens: int
    default_params: SamplingParams
    max_new_tokens_default: int | None
    chat_template: str | None = None
    trust_request_chat_template: bool = False
    log_requests: bool = False  # --enable-log-requests
    max_n: int = admission.DEFAULT_MAX_N
    max_queued_requests: int | None = admission.DEFAULT_MAX_QUEUED_REQUESTS
    # Tool-call and reasoning parsing (--enable-auto-tool-choice, --tool-call-parser, --reasoning-parser).
    chat_features: ChatFeatures = ChatFeatures()
    # A rendered chat prompt -> the constraint that replaces the request's own (a test hook:
    # see api_server.ServerHooks).
    chat_constraint: Callable[[str], GuidedDecodingParams | None] | None = None
    # --return-tokens-as-token-ids, --enable-force-include-usage, --enable-prompt-tokens-details.
    response_options: ResponseOptions = ResponseOptions()

    @classmethod
    def for_engine(cls, llm: AsyncLLM, **options) -> "ServingContext":
        config = llm.config
        kv_cache_tokens = llm.num_kv_blocks * config.block_size
        options.setdefault("max_queued_requests", llm.max_queued_requests)
        return cls(llm=llm, tokenizer=llm.tokenizer, vocab_size=config.hf_config.vocab_size,
                   model_names=list(config.served_model_name),
                   max_model_len=config.max_model_len,
                   sequence_capacity=min(config.max_model_len, kv_cache_tokens),
                   kv_cache_tokens=kv_cache_tokens,
                   default_params=llm.default_sampling_params(),
                   max_new_tokens_default=config.generation_config.get("max_new_tokens"),
                   **options)

    def check_model(self, name: str | None) -> str:
        """The served name a request addresses; None means the first one."""
        if name is None:
            return self.model_names[0]
        if name not in self.model_names:
            raise OpenAIError(f"The model `{name}` does not exist.", 404, "model")
        return name

    def tokenize(self, text: str, add_special_tokens: bool) -> EnginePrompt:
        return EnginePrompt(text, self.tokenizer.encode(text, add_special_tokens=add_special_tokens))

    def from_token_ids(self, ids: list[int]) -> EnginePrompt:
        if any(not 0 <= t < self.vocab_size for t in ids):
            raise OpenAIError(f"Prompt token ids must be in [0, {self.vocab_size}).", param="prompt")
        return EnginePrompt(self.tokenizer.decode(ids), ids)

    def check_fields(self, request: SamplingRequest) -> None:
        """The checks that need no prompt: run first, so that a bad field is a 400 at once, not
        after rendering a chat template (the template sandbox may still be starting)."""
        check_supported(request, self.vocab_size)
        admission.check_sampling_fields(request, self.max_n, self.vocab_size)

    def sampling_params(self, request: SamplingRequest, prompt: EnginePrompt, max_tokens: int | None,
                        logprobs: int | None = None, prompt_logprobs: int | None = None) -> SamplingParams:
        admission.check_context(len(prompt.token_ids), max_tokens, self.max_model_len, self.kv_cache_tokens)
        return build_sampling_params(request, self.default_params, self.max_new_tokens_default,
                                     self.sequence_capacity - len(prompt.token_ids), max_tokens, logprobs,
                                     prompt_logprobs)

    async def submit(self, request_id: str, prompts: list[EnginePrompt], params: list[SamplingParams],
                     stream: bool) -> list[RequestStream]:
        """Hand every prompt to the engine (as `request_id-i`); all are admitted or none is.
        A stream gets delta outputs (each token once); otherwise one final output."""
        kind = RequestOutputKind.DELTA if stream else RequestOutputKind.FINAL_ONLY
        admission.check_batch(len(prompts), self.max_queued_requests)
        streams: list[RequestStream] = []
        try:
            for i, (prompt, p) in enumerate(zip(prompts, params)):
                sub_id = f"{request_id}-{i}"
                if self.log_requests:
                    logger.info("Received request %s: prompt: %r, params: %s, prompt_token_ids: %s",
                                sub_id, prompt.text[:_LOG_CHARS], p, _clip(prompt.token_ids))
                streams.append(await self.llm.add_request(sub_id, prompt.as_engine_input(),
                                                          p.clone(output_kind=kind)))
        except BaseException:
            close_all(streams)
            raise
        return streams


def close_all(streams: list[RequestStream]) -> None:
    for s in streams:
        s.close()


async def merge(streams: list[RequestStream]) -> AsyncIterator[tuple[int, RequestOutput]]:
    """(prompt index, output) from several streams, as they come."""
    if len(streams) == 1:
        async for output in streams[0]:
            yield 0, output
        return
    queue: asyncio.Queue = asyncio.Queue()

    async def pump(i: int, stream: RequestStream) -> None:
        try:
            async for output in stream:
                queue.put_nowait((i, output))
        except Exception as e:  # noqa: BLE001 - handed to the consumer below
            queue.put_nowait((i, e))
        queue.put_nowait((i, None))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        remaining = len(streams)
        while remaining:
            i, item = await queue.get()
            if item is None:
                remaining -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield i, item
    finally:
        for t in tasks:
            t.cancel()


async def final_outputs(raw_request: Request, streams: list[RequestStream]) -> list[RequestOutput]:
    """Wait for every stream to finish; a client that disconnects meanwhile aborts them all."""
    async def collect() -> list[RequestOutput]:
        finals: list[RequestOutput | None] = [None] * len(streams)
        async for i, output in merge(streams):
            finals[i] = output
        return finals

    work = asyncio.ensure_future(collect())
    watcher = asyncio.ensure_future(_disconnected(raw_request))
    try:
        await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not work.done():
            work.cancel()
            close_all(streams)
    if not work.done() or work.cancelled():  # cancelled above: it ends at its next await
        raise OpenAIError("The client disconnected.", 499)
    return work.result()


async def _disconnected(raw_request: Request) -> None:
    # The body was read already, so the next message is the disconnect.
    while (await raw_request.receive())["type"] != "http.disconnect":
        pass


def usage_of(outputs: list[RequestOutput], cached_tokens: bool = False) -> UsageInfo:
    """`cached_tokens`: report prompt_tokens_details (--enable-prompt-tokens-details)."""
    prompt = sum(len(o.prompt_token_ids) for o in outputs)
    completion = sum(len(c.token_ids) for o in outputs for c in o.outputs)
    details = PromptTokenUsageInfo(cached_tokens=sum(o.num_cached_tokens for o in outputs)) if cached_tokens else None
    return UsageInfo(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
                     prompt_tokens_details=details)


def _clip(ids: list[int]) -> str:
    return str(ids) if len(ids) <= 32 else f"{ids[:32]}... ({len(ids)} tokens)"
