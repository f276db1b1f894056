"""vLLMWrapper: the transformer-like `model.chat()` of Qwen's vllm_wrapper.py for Qwen v1 chat
models (Qwen-7B-Chat and kin), on Ember. The seed's code runs with only its import changed:

    from ember.vllm_wrapper import vLLMWrapper
    model = vLLMWrapper("Qwen/Qwen-7B-Chat", tensor_parallel_size=1)
    response, history = model.chat(query="你好", history=None)

As in Qwen's wrapper, the prompt is ChatML built token by token (the system message, the
earlier turns that fit in `max_window_size` tokens, the query), sampling follows the
checkpoint's generation_config.json, and generation stops at <|im_end|>, <|im_start|> or
<|endoftext|>. `history` is a list of (query, response) pairs; the caller's list is never
modified."""
from __future__ import annotations

from typing import Any

from ember.llm import LLM
from ember.qwen_v1_tokenizer import ENDOFTEXT, IM_END, IM_START
from ember.sampling_params import SamplingParams

History = list[tuple[str, str]]


class vLLMWrapper:  # noqa: N801 (the seed's spelling)
    def __init__(self, model_dir: str, trust_remote_code: bool = True, tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.98, dtype: str = "bfloat16", **kwargs: Any):
        if dtype not in ("bfloat16", "float16", "float32"):
            raise ValueError(f"dtype must be bfloat16, float16 or float32, got {dtype!r}.")
        self.model = LLM(model=model_dir, trust_remote_code=trust_remote_code,
                         tensor_parallel_size=tensor_parallel_size,
                         gpu_memory_utilization=gpu_memory_utilization, dtype=dtype, **kwargs)
        self.tokenizer = self.model.get_tokenizer()
        self.generation_config = self.model.llm_engine.config.generation_config
        self.stop_token_ids = self.tokenizer.convert_tokens_to_ids([IM_END, IM_START, ENDOFTEXT])

    def chat(self, query: str, history: History | None = None, system: str = "You are a helpful assistant.",
             generation_config: Any = None) -> tuple[str, History]:
        """One turn: returns (response, history with this turn appended). `generation_config`
        (a dict or a transformers GenerationConfig) replaces the checkpoint's for this call."""
        config = generation_config if generation_config is not None else self.generation_config
        if _setting(config, "chat_format", "chatml") != "chatml":
            raise ValueError("chat() needs a chat model (chat_format 'chatml' in generation_config.json), "
                             "e.g. Qwen/Qwen-7B-Chat rather than Qwen/Qwen-7B.")
        history = list(history or [])
        text, token_ids = chatml_prompt(self.tokenizer, query, history, system,
                                        _setting(config, "max_window_size", 6144))
        output = self.model.generate({"prompt": text, "prompt_token_ids": token_ids},
                                     self.sampling_params(config), use_tqdm=False)[0]
        response = output.outputs[0].text
        history.append((query, response))
        return response, history

    def sampling_params(self, config: Any) -> SamplingParams:
        greedy = _setting(config, "do_sample", True) is False
        return SamplingParams(
            temperature=0.0 if greedy else _setting(config, "temperature", 1.0),
            top_p=_setting(config, "top_p", 1.0), top_k=_setting(config, "top_k", 0) or 0,
            repetition_penalty=_setting(config, "repetition_penalty", 1.0),
            max_tokens=_setting(config, "max_new_tokens", 512), stop_token_ids=self.stop_token_ids)


def chatml_prompt(tokenizer, query: str, history: History, system: str,
                  max_window_size: int) -> tuple[str, list[int]]:
    """(text, token ids) of Qwen's ChatML prompt, as its make_context builds it. Roles and
    contents are encoded as plain text, so a user typing "<|im_end|>" cannot end a message;
    the oldest turns are left out first when the prompt would reach max_window_size tokens."""
    im_start, im_end = tokenizer.convert_tokens_to_ids([IM_START, IM_END])
    newline = tokenizer.encode("\n", allowed_special=set())

    def message(role: str, content: str) -> tuple[str, list[int]]:
        ids = (tokenizer.encode(role, allowed_special=set()) + newline
               + tokenizer.encode(content, allowed_special=set()))
        return f"{IM_START}{role}\n{content}{IM_END}", [im_start, *ids, im_end]

    system_text, system_ids = message("system", system)
    turns_text, turns_ids = "", []
    for past_query, past_response in reversed(history):
        query_text, query_ids = message("user", past_query)
        response_text, response_ids = message("assistant", past_response)
        ids = newline + query_ids + newline + response_ids
        if len(system_ids) + len(ids) + len(turns_ids) >= max_window_size:
            break
        turns_text, turns_ids = f"\n{query_text}\n{response_text}" + turns_text, ids + turns_ids
    query_text, query_ids = message("user", query)
    text = f"{system_text}{turns_text}\n{query_text}\n{IM_START}assistant\n"
    ids = (system_ids + turns_ids + newline + query_ids + newline + [im_start]
           + tokenizer.encode("assistant", allowed_special=set()) + newline)
    return text, ids


def _setting(config: Any, name: str, default: Any) -> Any:
    value = config.get(name) if isinstance(config, dict) else getattr(config, name, None)
    return default if value is None else value
