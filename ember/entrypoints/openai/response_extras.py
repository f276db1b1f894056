"""The response fields vLLM adds to OpenAI's, for one request, streamed or not:

- return_token_ids: `prompt_token_ids` (chat: on the response or its first chunk; completions:
  on each choice, or its first chunk) and each choice's `token_ids` (streamed: the tokens new
  since the choice's previous chunk);
- return_tokens_as_token_ids (or --return-tokens-as-token-ids): logprob tokens as "token_id:N";
- stream_options.include_usage / continuous_usage_stats and --enable-force-include-usage,
  with vLLM's rule: the flag forces the final usage chunk; continuous_usage_stats puts the usage
  so far in every chunk, when usage is included at all;
- --enable-prompt-tokens-details: usage.prompt_tokens_details.cached_tokens, the prompt tokens
  whose KV the prefix cache supplied;
- chat's `prompt_logprobs` (completions have it per choice already).

A stream's shape calls `observe` with each engine output as it comes (delta outputs: each
token once) and passes its chunks through `chunk`; a whole response (one final output per
prompt) goes through `response`."""
from __future__ import annotations

from ember.entrypoints.openai.cli_args import ResponseOptions
from ember.entrypoints.openai.logprobs import prompt_logprobs_json
from ember.entrypoints.openai.protocol import (ChatCompletionChunk, ChatCompletionResponse, CompletionChoice,
                                               CompletionResponse, PromptTokenUsageInfo, SamplingRequest,
                                               UsageInfo)
from ember.entrypoints.openai.serving import usage_of
from ember.outputs import RequestOutput


class ResponseExtras:
    def __init__(self, options: ResponseOptions, request: SamplingRequest, prompts: list[list[int]], n: int):
        """`prompts`: each prompt's token ids; `n`: choices per prompt (choice index =
        prompt index * n + sample index)."""
        self.request = request
        self.prompts, self.n = prompts, n
        self.return_token_ids = bool(request.return_token_ids)
        as_ids = request.return_tokens_as_token_ids
        self.tokens_as_ids = options.return_tokens_as_token_ids if as_ids is None else as_ids
        self.cached_tokens = options.enable_prompt_tokens_details
        stream_options = request.stream_options
        self.include_usage = options.enable_force_include_usage or bool(stream_options and stream_options.include_usage)
        self.continuous_usage = self.include_usage and bool(stream_options and stream_options.continuous_usage_stats)
        self._unsent: dict[int, list[int]] = {}  # choice index -> its token ids not in a chunk yet
        self._num_tokens: dict[int, int] = {}    # choice index -> its tokens so far
        self._cached: dict[int, int] = {}        # prompt index -> prefix-cache hits
        self._prompt_sent: set[int] = set()      # choices (chat: -1, the response) given prompt_token_ids

    def observe(self, prompt_index: int, output: RequestOutput) -> None:
        self._cached[prompt_index] = max(self._cached.get(prompt_index, 0), output.num_cached_tokens)
        for sample in output.outputs:
            index = prompt_index * self.n + sample.index
            self._unsent.setdefault(index, []).extend(sample.token_ids)
            self._num_tokens[index] = self._num_tokens.get(index, 0) + len(sample.token_ids)

    def usage(self, outputs: list[RequestOutput]) -> UsageInfo:
        """Usage of whole (final) outputs."""
        return usage_of(outputs, self.cached_tokens)

    def _details(self) -> PromptTokenUsageInfo | None:
        return PromptTokenUsageInfo(cached_tokens=sum(self._cached.values())) if self.cached_tokens else None

    def usage_so_far(self) -> UsageInfo:
        """A stream's usage so far: every prompt's tokens, and the tokens observed."""
        prompt = sum(len(p) for p in self.prompts)
        completion = sum(self._num_tokens.values())
        return UsageInfo(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
                         prompt_tokens_details=self._details())

    def _first(self, key: int) -> bool:
        first = key not in self._prompt_sent
        self._prompt_sent.add(key)
        return first

    def chunk(self, chunk: ChatCompletionChunk | CompletionResponse) -> ChatCompletionChunk | CompletionResponse:
        if self.return_token_ids:
            if isinstance(chunk, ChatCompletionChunk) and self._first(-1):
                chunk.prompt_token_ids = self.prompts[0]
            for choice in chunk.choices:
                choice.token_ids = self._unsent.pop(choice.index, [])
                if isinstance(choice, CompletionChoice) and self._first(choice.index):
                    choice.prompt_token_ids = self.prompts[choice.index // self.n]
        if self.continuous_usage and chunk.choices:
            chunk.usage = self.usage_so_far()
        elif chunk.usage is not None and self.cached_tokens:  # the final usage chunk
            chunk.usage.prompt_tokens_details = self._details()
        return chunk

    def response(self, response: ChatCompletionResponse | CompletionResponse,
                 finals: list[RequestOutput]) -> ChatCompletionResponse | CompletionResponse:
        token_ids = {i * self.n + s.index: s.token_ids for i, o in enumerate(finals) for s in o.outputs}
        if self.return_token_ids:
            if isinstance(response, ChatCompletionResponse):
                response.prompt_token_ids = self.prompts[0]
            for choice in response.choices:
                choice.token_ids = list(token_ids.get(choice.index, []))
                if isinstance(choice, CompletionChoice):
                    choice.prompt_token_ids = self.prompts[choice.index // self.n]
        if isinstance(response, ChatCompletionResponse) and getattr(self.request, "prompt_logprobs", None) is not None:
            response.prompt_logprobs = prompt_logprobs_json(finals[0].prompt_logprobs)
        if self.cached_tokens and response.usage is not None:
            response.usage.prompt_tokens_details = PromptTokenUsageInfo(
                cached_tokens=sum(o.num_cached_tokens for o in finals))
        return response
