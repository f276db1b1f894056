"""POST /v1/chat/completions: messages rendered by the model's chat template (or
--chat-template), n choices, chat-shaped logprobs, and OpenAI's streaming: a first delta
{"role": "assistant", "content": ""} per choice, content deltas, an empty delta beside the
finish_reason, an optional usage chunk, then [DONE].

With tools or a reasoning parser, chat_parsing.py splits each choice's text into
reasoning_content, content and tool_calls (deltas of each when streaming), and tool_choice
"required" or a named function constrains the output with a grammar."""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from typing import AsyncIterator

import jinja2
from fastapi import Request
from fastapi.responses import Response

from ember.entrypoints.openai import beam_search
from ember.entrypoints.openai.chat_parsing import ChoiceParser, ToolPlan, plan_tools, reasoning_parser
from ember.entrypoints.openai.errors import OpenAIError
from ember.entrypoints.openai.logprobs import chat_logprobs
from ember.entrypoints.openai.protocol import (ChatChoice, ChatChoiceLogprobs, ChatCompletionChunk,
                                               ChatCompletionRequest, ChatCompletionResponse, ChatMessage,
                                               ChatResponseMessage, ChatStreamChoice, TokenizeRequest)
from ember.entrypoints.openai.reasoning.think import THINK_END, prompt_thinking_state
from ember.entrypoints.openai.response_extras import ResponseExtras
from ember.entrypoints.openai.sampling import compile_structured, with_constraint
from ember.entrypoints.openai.serving import ServingContext, close_all, final_outputs, merge, usage_of
from ember.entrypoints.openai.streaming import ChoiceProgress, SSEResponse, sse, streamed_usage
from ember.outputs import RequestOutput
from ember.sampling_params import SamplingParams
from ember.tokenizer import render_chat


async def create_chat_completion(ctx: ServingContext, request: ChatCompletionRequest,
                                 raw_request: Request) -> Response:
    model = ctx.check_model(request.model)
    ctx.check_fields(request)
    plan = plan_tools(request.tools, request.tool_choice, ctx.chat_features)
    if request.top_logprobs is not None and not request.logprobs:
        raise OpenAIError("top_logprobs needs logprobs set to true.", param="top_logprobs")
    template = ctx.chat_template
    if request.chat_template is not None:
        if not ctx.trust_request_chat_template:
            raise OpenAIError("A chat_template in the request is refused; the server accepts one only when "
                              "started with --trust-request-chat-template.", param="chat_template")
        template = request.chat_template
    text = render_messages(ctx, request, template)
    prompt = ctx.tokenize(text, request.add_special_tokens)
    num_top = (request.top_logprobs or 0) if request.logprobs else None
    params = ctx.sampling_params(request, prompt, request.max_completion_tokens or request.max_tokens, num_top,
                                 request.prompt_logprobs)
    prompt_state = prompt_thinking_state(text, request.chat_template_kwargs)
    params = _constrain(params, plan, ctx.chat_features.reasoning_parser is not None and prompt_state != "closed")
    scripted = ctx.chat_constraint(text) if ctx.chat_constraint is not None else None
    if scripted is not None:
        params = with_constraint(params, scripted)
    await compile_structured(ctx.llm, [params], from_tools=plan.guided is not None and scripted is None)
    chat_id = f"chatcmpl-{uuid.uuid4().hex}"
    streams = await beam_search.submit(ctx, request, chat_id, [prompt], [params], stream=bool(request.stream))
    shape = _Shape(ctx, request, model, chat_id, plan, prompt_state, prompt.token_ids)
    if request.stream:
        return SSEResponse(shape.events(merge(streams)), on_close=lambda: close_all(streams))
    final = (await final_outputs(raw_request, streams))[0]
    return Response(shape.response(final).model_dump_json(), media_type="application/json")


def _constrain(params: SamplingParams, plan: ToolPlan, thinks_first: bool) -> SamplingParams:
    """The grammar tool_choice imposes; with a reasoning parser, any grammar applies only after
    the reasoning (the text after </think>), unless the prompt already closed it."""
    if plan.guided is not None:
        if params.guided_decoding is not None:
            raise OpenAIError("tool_choice \"required\" or a named function constrains the output itself; it "
                              "cannot be combined with response_format or guided_*.", param="tool_choice")
        params = with_constraint(params, plan.guided)
    if thinks_first and params.guided_decoding is not None:
        params = with_constraint(params, replace(params.guided_decoding, start_after=THINK_END))
    return params


def render_messages(ctx: ServingContext, request: ChatCompletionRequest | TokenizeRequest,
                    template: str | None) -> str:
    try:
        return render_chat(ctx.tokenizer, [_as_template_message(m) for m in request.messages], template,
                           add_generation_prompt=request.add_generation_prompt,
                           continue_final_message=request.continue_final_message,
                           tools=getattr(request, "tools", None),
                           chat_template_kwargs=request.chat_template_kwargs)
    except jinja2.TemplateError as e:
        raise OpenAIError(f"The chat template failed on these messages: {e}", param="messages") from None


def _as_template_message(message: ChatMessage) -> dict:
    """A message as chat templates expect it: content as one string, and a tool call's
    arguments as an object (templates write them with `tojson`), as vLLM passes them."""
    data = message.model_dump(exclude_none=True)
    if isinstance(message.content, list):
        other = sorted({part.type for part in message.content} - {"text"})
        if other:
            raise OpenAIError(f"Only text content parts are supported, not {', '.join(other)}.", param="messages")
        data["content"] = "\n".join(part.text or "" for part in message.content)
    if message.tool_calls:
        data.setdefault("content", "")
        data["tool_calls"] = [_template_tool_call(call) for call in message.tool_calls]
    return data


def _template_tool_call(call: dict) -> dict:
    call = dict(call)
    function = call.get("function")
    if isinstance(function, dict) and isinstance(function.get("arguments"), str):
        try:
            call["function"] = {**function, "arguments": json.loads(function["arguments"])}
        except json.JSONDecodeError:
            pass  # left as the string it is
    return call


class _Shape:
    def __init__(self, ctx: ServingContext, request: ChatCompletionRequest, model: str, chat_id: str,
                 plan: ToolPlan | None = None, prompt_state: str | None = None,
                 prompt_token_ids: list[int] | None = None):
        self.ctx, self.request, self.model, self.id = ctx, request, model, chat_id
        self.created = int(time.time())
        self.plan = plan or ToolPlan()
        self.prompt_state = prompt_state
        # Plain text needs no parsing: its path stays the one without tools or reasoning.
        self.parsing = self.plan.extractor is not None or ctx.chat_features.reasoning_parser is not None
        self.extras = ResponseExtras(ctx.response_options, request, [prompt_token_ids or []], request.n)

    def _parser(self) -> ChoiceParser:
        return ChoiceParser(reasoning_parser(self.ctx.chat_features, self.prompt_state), self.plan)

    def _logprobs(self, token_ids: list[int], entries: list) -> ChatChoiceLogprobs | None:
        if not self.request.logprobs:
            return None
        return ChatChoiceLogprobs(content=chat_logprobs(token_ids, entries, self.request.top_logprobs or 0,
                                                        self.ctx.tokenizer, self.extras.tokens_as_ids))

    def response(self, final: RequestOutput) -> ChatCompletionResponse:
        choices = []
        for s in final.outputs:
            message, finish = ChatResponseMessage(content=s.text), s.finish_reason
            if self.parsing:
                parser = self._parser()
                parsed = parser.message(s.text)
                message = ChatResponseMessage(content=parsed.content, reasoning=parsed.reasoning_content,
                                              reasoning_content=parsed.reasoning_content,
                                              tool_calls=parsed.tool_calls)
                finish = parser.finish_reason(finish)
            choices.append(ChatChoice(index=s.index, message=message,
                                      logprobs=self._logprobs(s.token_ids, s.logprobs or []),
                                      finish_reason=finish, stop_reason=s.stop_reason))
        return self.extras.response(ChatCompletionResponse(id=self.id, created=self.created, model=self.model,
                                                           choices=choices, usage=usage_of([final])), [final])

    def _chunk(self, choices: list[ChatStreamChoice], usage=None) -> str:
        return sse(self.extras.chunk(ChatCompletionChunk(id=self.id, created=self.created, model=self.model,
                                                         choices=choices, usage=usage)))

    async def events(self, outputs: AsyncIterator[tuple[int, RequestOutput]]) -> AsyncIterator[str]:
        for index in range(self.request.n):
            yield self._chunk([ChatStreamChoice(index=index, delta={"role": "assistant", "content": ""})])
        progress = [ChoiceProgress() for _ in range(self.request.n)]
        parsers = [self._parser() for _ in range(self.request.n)] if self.parsing else None
        # Parsed streams may hold text back (a tag not yet complete): the tokens (and logprobs)
        # whose text was not sent yet wait for the next chunk of their choice.
        held_ids: list[list[int]] = [[] for _ in range(self.request.n)]
        held_entries: list[list] = [[] for _ in range(self.request.n)]
        final = None
        async for _, output in outputs:
            self.extras.observe(0, output)
            for sample in output.outputs:
                state = progress[sample.index]
                if state.finished:
                    continue
                text, entries, finish = state.advance(sample)
                if parsers is None:
                    if text or entries:
                        logprobs = self._logprobs(sample.token_ids, entries)
                        yield self._chunk([ChatStreamChoice(index=sample.index, delta={"content": text},
                                                            logprobs=logprobs)])
                    if finish:
                        yield self._chunk([ChatStreamChoice(index=sample.index, delta={}, finish_reason=finish,
                                                            stop_reason=sample.stop_reason)])
                    continue
                parser = parsers[sample.index]
                held_ids[sample.index] += sample.token_ids
                held_entries[sample.index] += entries
                deltas = parser.update(state.text, finish is not None)
                if finish:
                    deltas.append({})
                for delta in deltas:
                    logprobs = None
                    if held_ids[sample.index]:
                        logprobs = self._logprobs(held_ids[sample.index], held_entries[sample.index])
                        held_ids[sample.index], held_entries[sample.index] = [], []
                    last = finish is not None and delta is deltas[-1]
                    yield self._chunk([ChatStreamChoice(
                        index=sample.index, delta=delta, logprobs=logprobs,
                        finish_reason=parser.finish_reason(finish) if last else None,
                        stop_reason=sample.stop_reason if last else None)])
            if output.finished:
                final = output
        if self.extras.include_usage and final is not None:
            yield self._chunk([], usage=streamed_usage([len(final.prompt_token_ids)], progress))
