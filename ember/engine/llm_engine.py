"""LLMEngine: the offline engine in one process. The front end (input and output processing)
and the engine core run on the caller's thread: add_request, then step until done."""
from __future__ import annotations

import logging
import time

from ember.config import EngineConfig
from ember.engine.core import EngineCore, StepHook
from ember.engine.input_processor import InputProcessor, eos_token_ids
from ember.engine.output_processor import OutputProcessor
from ember.outputs import RequestOutput
from ember.sampling_params import SamplingParams
from ember.tokenizer import load_tokenizer

logger = logging.getLogger(__name__)


class LLMEngine:
    def __init__(self, config: EngineConfig, before_step: StepHook | None = None):
        """`before_step`: see EngineCore (tests inject faults through it)."""
        self.config = config
        start = time.perf_counter()
        self.tokenizer = None if config.skip_tokenizer_init else load_tokenizer(
            config.tokenizer_path, config.trust_remote_code, config.revision)
        tokenizer = self.tokenizer  # the closure holds the tokenizer, not the engine: no cycle to collect
        self.core = EngineCore(config, lambda: tokenizer, eos_token_ids(config, tokenizer), before_step)
        self.input_processor = InputProcessor(config, self.tokenizer, self.core.num_kv_blocks)
        self.output_processor = OutputProcessor(self.tokenizer)
        self.startup_seconds = time.perf_counter() - start
        logger.info("Engine ready in %.1f s", self.startup_seconds)

    # The core's parts, for tests and tools that inspect them.
    @property
    def block_manager(self):
        return self.core.block_manager

    @property
    def scheduler(self):
        return self.core.scheduler

    @property
    def executor(self):
        return self.core.executor

    @property
    def num_kv_blocks(self) -> int:
        return self.core.num_kv_blocks

    @property
    def eos_token_ids(self) -> list[int]:
        return self.input_processor.eos_token_ids

    def shutdown(self) -> None:
        """Stop the executor's worker processes or actors (tensor parallelism); the engine is
        unusable afterwards. Also done at interpreter exit."""
        self.core.shutdown()

    def default_sampling_params(self) -> SamplingParams:
        return self.input_processor.default_sampling_params()

    def tokenize(self, prompt: str, add_special_tokens: bool = True) -> list[int]:
        return self.input_processor.tokenize(prompt, add_special_tokens)

    def add_request(self, request_id: str, prompt: str | list[int] | dict, params: SamplingParams | None = None,
                    arrival_time: float | None = None) -> None:
        if request_id in self.output_processor.requests:
            raise ValueError(f"Request id {request_id!r} is already in use.")
        text, request = self.input_processor.process(request_id, prompt, params, arrival_time)
        self.core.add_request(request)
        self.output_processor.add_request(request_id, text, request.prompt_token_ids, request.params,
                                          request.arrival_time)

    def abort_request(self, request_id: str) -> bool:
        self.output_processor.abort_request(request_id)
        return self.core.abort_request(request_id)

    def has_unfinished_requests(self) -> bool:
        return self.core.has_unfinished_requests() or self.output_processor.has_unfinished_requests()

    def step(self) -> list[RequestOutput]:
        """Run one step. Returns the outputs each request's output_kind asks for (by default
        the whole output so far of every request that progressed). A request that fails
        raises here, after it was aborted."""
        processed = self.output_processor.process(self.core.step(), time.monotonic())
        for request_id, index in processed.samples_to_abort:
            self.core.abort_sample(request_id, index)
        for request_id, error in processed.failed.items():
            self.core.abort_request(request_id)
            raise error
        return processed.outputs

