"""LLM: offline batched generation with vLLM's interface."""
from __future__ import annotations

import itertools
from typing import Any, Sequence as Seq

from tqdm.auto import tqdm

from ember import beam_search as _beam_search
from ember.beam_search import BeamSearchOutput, BeamSearchParams
from ember.engine.llm_engine import LLMEngine
from ember.engine_args import EngineArgs
from ember.outputs import RequestOutput
from ember.request_checks import check_prompt
from ember.sampling_params import RequestOutputKind, SamplingParams
from ember.tokenizer import read_chat_template, render_chat

Prompt = str | list[int] | dict


class LLM:
    def __init__(self, model: str, tokenizer: str | None = None, dtype: str = "auto", seed: int = 0,
                 max_model_len: int | None = None, gpu_memory_utilization: float = 0.9,
                 max_num_seqs: int = 256, max_num_batched_tokens: int | None = None,
                 block_size: int = 16, enable_prefix_caching: bool = True, enforce_eager: bool = False,
                 trust_remote_code: bool = False, **kwargs: Any):
        config = EngineArgs.from_kwargs(
            model=model, tokenizer=tokenizer, dtype=dtype, seed=seed, max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization, max_num_seqs=max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens, block_size=block_size,
            enable_prefix_caching=enable_prefix_caching, enforce_eager=enforce_eager,
            trust_remote_code=trust_remote_code, **kwargs).resolve()
        self.llm_engine = LLMEngine(config)
        self._ids = itertools.count()

    def get_tokenizer(self):
        return self.llm_engine.tokenizer

    def get_default_sampling_params(self) -> SamplingParams:
        return self.llm_engine.default_sampling_params()

    def generate(self, prompts: Prompt | Seq[Prompt], sampling_params: SamplingParams | Seq[SamplingParams] | None = None,
                 use_tqdm: bool = True) -> list[RequestOutput]:
        prompts = _as_prompt_list(prompts)
        if sampling_params is None:
            sampling_params = self.get_default_sampling_params()
        if isinstance(sampling_params, SamplingParams):
            params = [sampling_params] * len(prompts)
        else:
            params = list(sampling_params)
            if len(params) != len(prompts):
                raise ValueError(f"Got {len(params)} sampling_params for {len(prompts)} prompts.")
        return self._run(prompts, params, use_tqdm)

    def beam_search(self, prompts: Seq[Prompt], params: BeamSearchParams, lora_request: Any = None,
                    use_tqdm: bool = False, concurrency_limit: int | None = None) -> list[BeamSearchOutput]:
        """vLLM's LLM.beam_search: for each prompt, the params.beam_width best continuations
        (see ember/beam_search.py)."""
        if lora_request is not None:
            raise ValueError("lora_request: Ember serves no LoRA adapters.")
        prompts = _as_prompt_list(prompts)
        for i, prompt in enumerate(prompts):
            check_prompt(prompt, i)
        return _beam_search.run_offline(self, prompts, params, use_tqdm, concurrency_limit)

    def chat(self, messages: list[dict] | list[list[dict]], sampling_params=None, use_tqdm: bool = True,
             chat_template: str | None = None, add_generation_prompt: bool = True,
             continue_final_message: bool = False, tools: list[dict] | None = None,
             chat_template_kwargs: dict | None = None) -> list[RequestOutput]:
        conversations = [messages] if messages and isinstance(messages[0], dict) else list(messages)
        template = read_chat_template(chat_template)
        tokenizer = self.get_tokenizer()
        prompts = []
        for conversation in conversations:
            text = render_chat(tokenizer, conversation, template, add_generation_prompt,
                               continue_final_message, tools, chat_template_kwargs)
            # The template already wrote any BOS token: add no special tokens again.
            prompts.append({"prompt": text, "prompt_token_ids": tokenizer.encode(text, add_special_tokens=False)})
        return self.generate(prompts, sampling_params, use_tqdm)

    def _run(self, prompts: list[Prompt], params: list[SamplingParams], use_tqdm: bool) -> list[RequestOutput]:
        engine = self.llm_engine
        ids = []
        try:
            for prompt, p in zip(prompts, params):
                request_id = str(next(self._ids))
                engine.add_request(request_id, prompt, p.clone(output_kind=RequestOutputKind.FINAL_ONLY))
                ids.append(request_id)
            finished: dict[str, RequestOutput] = {}
            bar = tqdm(total=len(ids), desc="Processed prompts", dynamic_ncols=True, disable=not use_tqdm)
            prompt_tokens = output_tokens = 0
            while engine.has_unfinished_requests():
                for out in engine.step():
                    if out.finished:
                        finished[out.request_id] = out
                        prompt_tokens += len(out.prompt_token_ids)
                        output_tokens += sum(len(o.token_ids) for o in out.outputs)
                        bar.update(1)
                        elapsed = bar.format_dict["elapsed"] or 1e-9
                        bar.set_postfix_str(f"est. speed input: {prompt_tokens / elapsed:.2f} toks/s, "
                                            f"output: {output_tokens / elapsed:.2f} toks/s", refresh=False)
            bar.close()
        except BaseException:
            for request_id in ids:
                engine.abort_request(request_id)
            raise
        return [finished[i] for i in ids]


def _as_prompt_list(prompts) -> list[Prompt]:
    if isinstance(prompts, (str, dict)):
        return [prompts]
    prompts = list(prompts)
    if prompts and all(isinstance(t, int) for t in prompts):
        return [prompts]
    return prompts
