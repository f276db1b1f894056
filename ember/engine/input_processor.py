"""The front end's half of admitting a request: prompt -> token ids, the checkpoint's sampling
defaults, and every check that can refuse it, done before the engine core sees it."""
from __future__ import annotations

import time

from ember.config import EngineConfig
from ember.engine.messages import EngineCoreRequest
from ember.request_checks import check_prompt, check_token_fields
from ember.sampling_params import SamplingParams

# generation_config.json keys that become SamplingParams defaults, as vLLM applies them.
_GENERATION_DEFAULTS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
                        "min_p": "min_p", "repetition_penalty": "repetition_penalty",
                        "max_new_tokens": "max_tokens"}


class InputProcessor:
    def __init__(self, config: EngineConfig, tokenizer, num_kv_blocks: int):
        self.config = config
        self.tokenizer = tokenizer
        self.num_kv_blocks = num_kv_blocks
        self.eos_token_ids = eos_token_ids(config, tokenizer)

    def default_sampling_params(self) -> SamplingParams:
        """SamplingParams() with the checkpoint's generation_config.json defaults applied."""
        gen = self.config.generation_config
        overrides = {ours: gen[theirs] for theirs, ours in _GENERATION_DEFAULTS.items() if theirs in gen}
        if gen.get("do_sample") is False:
            overrides["temperature"] = 0.0
        return SamplingParams(**overrides)

    def tokenize(self, prompt: str, add_special_tokens: bool = True) -> list[int]:
        if self.tokenizer is None:
            raise ValueError("This engine was started without a tokenizer: give prompt token ids.")
        return self.tokenizer.encode(prompt, add_special_tokens=add_special_tokens)

    def process(self, request_id: str, prompt: str | list[int] | dict, params: SamplingParams | None,
                arrival_time: float | None = None) -> tuple[str | None, EngineCoreRequest]:
        """(the prompt's text if known, the request for the core). ValueError when it is invalid."""
        params = params if params is not None else self.default_sampling_params()
        check_prompt(prompt)
        check_token_fields(params, self.config.hf_config.vocab_size)
        text, ids = split_prompt(prompt)
        if ids is None:
            ids = self.tokenize(text)
        if params.best_of > params.n:
            raise ValueError("best_of > n is not supported: ask for n samples instead.")
        self.validate_prompt(ids, params)
        params = params.clone(_eos_token_ids=self.eos_token_ids)
        if params.max_tokens is None:
            params.max_tokens = self.config.max_model_len - len(ids)
        arrival = time.monotonic() if arrival_time is None else arrival_time
        return text, EngineCoreRequest(request_id, ids, params, arrival)

    def validate_prompt(self, prompt_token_ids: list[int], params: SamplingParams) -> None:
        n = len(prompt_token_ids)
        if n == 0:
            raise ValueError("The prompt is empty.")
        vocab = self.config.hf_config.vocab_size
        if any(not 0 <= t < vocab for t in prompt_token_ids):
            raise ValueError(f"Prompt token ids must be in [0, {vocab}).")
        limit = self.config.max_model_len
        if n >= limit:
            raise ValueError(f"The prompt is {n} tokens long, but this model's maximum context length "
                             f"(max_model_len) is {limit} tokens, which leaves no room to generate.")
        # A max_tokens beyond the context is not an error (vLLM's offline semantics, seed 004
        # asks 32768): generation stops at max_model_len with finish_reason "length". The
        # server refuses such a request with a 400 before it gets here (admission.py).
        total = min(n + (params.max_tokens or limit), limit)
        block_size = self.config.block_size
        if -(-total // block_size) > self.num_kv_blocks:
            raise ValueError(f"This request needs up to {total} tokens of KV cache, but the whole "
                             f"cache holds {self.num_kv_blocks * block_size}.")


def eos_token_ids(config: EngineConfig, tokenizer) -> list[int]:
    ids = config.generation_config.get("eos_token_id")
    if ids is None:
        ids = getattr(config.hf_config, "eos_token_id", None)
    if ids is None and tokenizer is not None:
        ids = tokenizer.eos_token_id
    if ids is None:
        return []
    return [ids] if isinstance(ids, int) else list(ids)


def split_prompt(prompt: str | list[int] | dict) -> tuple[str | None, list[int] | None]:
    """(text, token ids): a string, a list of token ids, or vLLM's {"prompt": ...} /
    {"prompt_token_ids": [...]} dicts."""
    if isinstance(prompt, str):
        return prompt, None
    if isinstance(prompt, dict):
        if "prompt_token_ids" in prompt:
            return prompt.get("prompt"), list(prompt["prompt_token_ids"])
        if "prompt" in prompt:
            return prompt["prompt"], None
        raise ValueError("A prompt dict needs 'prompt' or 'prompt_token_ids'.")
    if isinstance(prompt, (list, tuple)):  # integers: check_prompt saw to it
        return None, list(prompt)
    raise ValueError(f"A prompt must be a string or a list of token ids, got {type(prompt).__name__}.")
