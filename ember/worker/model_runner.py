"""Runs one scheduled step on one device: StepInput -> tensors -> model -> logits -> tokens.

Under tensor parallelism every rank runs this same step on its shard of the model. Only the
driver (rank 0) receives logits and samples; it broadcasts the sampled tokens, which the other
ranks need to fill the placeholders of the next step."""
from __future__ import annotations

import gc
import logging
import time

import torch

from ember.config import EngineConfig, cpu_kv_cache_bytes
from ember.distributed.communication import broadcast_token_ids
from ember.distributed.parallel_state import is_driver, tp_size
from ember.models.layers.attention import attention_metadata
from ember.models.loader import load_model
from ember.worker import kv_cache
from ember.worker.cuda_graphs import DecodeGraphs, context_bounds
from ember.worker.block_tables import BlockTables
from ember.worker.input_batch import build_model_input
from ember.worker.prefill_graphs import PrefillGraphs, capture_sizes as prefill_capture_sizes
from ember.worker.sampler import SamplingBatch, sample
from ember.worker.sampling_state import SamplingStates
from ember.worker.pending_step import PendingStep
from ember.worker.precompile import Precompiler, model_spec
from ember.worker.step_input import StepInput, StepOutput

logger = logging.getLogger(__name__)


class ModelRunner:
    def __init__(self, config: EngineConfig):
        self.config = config
        self.device = torch.device(config.device)
        start = time.perf_counter()
        # The CUDA graphs' Triton kernels compile in child processes meanwhile (cold start),
        # from when the model is built: they need its shapes, not its weights.
        self.precompiler = None
        self.model = load_model(config.model_path, config.hf_config, config.torch_dtype, config.device,
                                config.max_model_len, config.load_format, config.seed, config.quant_config,
                                config.attention_backend, on_built=self._start_precompiler)
        # The weights' own size shows what quantization saves (the 7B shape: 14.2 GiB in bf16,
        # 5.3 GiB in GPTQ int4 with its embedding and LM head still bf16).
        weight_bytes = sum(t.numel() * t.element_size()
                           for t in (*self.model.parameters(), *self.model.buffers()))
        logger.info("Loaded %s (%s, %s) in %.1f s: weights take %.2f GiB", config.model, config.torch_dtype,
                    self.device, time.perf_counter() - start, weight_bytes / 2**30)
        self.vocab_size = config.hf_config.vocab_size
        self.sampling = SamplingStates(self.device, self.vocab_size)
        self.block_tables = BlockTables(-(-config.max_model_len // config.block_size))
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        self.num_blocks = 0
        self.graphs: DecodeGraphs | None = None
        self.prefill_graphs: PrefillGraphs | None = None
        # The previous step's sampled tokens, on the device, by sequence.
        self._last_tokens: torch.Tensor | None = None
        self._last_seq_ids: list[int] = []

    def _start_precompiler(self, model: torch.nn.Module) -> None:
        c = self.config
        if self.device.type == "cuda" and not c.enforce_eager and tp_size() == 1:
            self.precompiler = Precompiler.launch(model_spec(
                model, self.device, c.torch_dtype, c.kv_cache_torch_dtype, c.block_size, c.max_num_seqs,
                context_bounds(c.max_model_len), prefill_capture_sizes(c.max_num_batched_tokens, c.max_model_len)))

    def determine_num_blocks(self) -> int:
        c = self.config
        per_block = kv_cache.bytes_per_block(self.model, c.block_size, c.kv_cache_torch_dtype)
        if c.num_gpu_blocks_override is not None:
            return c.num_gpu_blocks_override
        if self.device.type != "cuda":
            return max(1, cpu_kv_cache_bytes() // per_block)
        start = time.perf_counter()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(self.device)
        self._profile_forward()
        peak = torch.cuda.max_memory_allocated(self.device)
        self._join_precompiler()  # their CUDA contexts would read as memory taken
        # Part of the cold start: the first forward also compiles the prefill path's kernels.
        logger.info("Profiled memory (one forward of %d tokens) in %.1f s", c.max_num_batched_tokens,
                    time.perf_counter() - start)
        return kv_cache.gpu_blocks_from_profile(peak, c.gpu_memory_utilization, per_block, self.device)

    @torch.inference_mode()
    def _profile_forward(self) -> None:
        """The largest step the scheduler can produce, with no cache yet: its peak memory is
        what the cache must leave free."""
        c = self.config
        remaining = c.max_num_batched_tokens
        while remaining > 0:
            n = min(remaining, c.max_model_len)
            ids = torch.zeros(n, dtype=torch.int64, device=self.device)
            hidden = self.model(ids, torch.arange(n, device=self.device))
            remaining -= n
        logits = self.model.compute_logits(hidden[-1:].expand(c.max_num_seqs, -1))
        if logits is not None:
            logits.softmax(dim=-1)
        torch.cuda.synchronize(self.device)

    def initialize_cache(self, num_blocks: int) -> None:
        self.num_blocks = num_blocks
        c = self.config
        self._join_precompiler()
        start = time.perf_counter()
        self.kv_caches = kv_cache.allocate_kv_cache(self.model, num_blocks, c.block_size, c.kv_cache_torch_dtype,
                                                    self.device)
        logger.info("Allocated the KV cache (%d blocks) in %.1f s", num_blocks, time.perf_counter() - start)
        if self.device.type == "cuda" and not c.enforce_eager:
            pool = torch.cuda.graph_pool_handle()
            self.graphs = DecodeGraphs(self.model, c.max_num_seqs, c.max_model_len, c.block_size, self.device)
            self.graphs.capture(pool)
            self.prefill_graphs = PrefillGraphs(self.model, c.max_num_batched_tokens, c.max_model_len, c.block_size,
                                                self.device)
            self.prefill_graphs.capture(pool)
        if self.device.type == "cuda" and is_driver():
            self._warm_up_sampler()

    def _join_precompiler(self) -> None:
        if self.precompiler is not None:
            self.precompiler.wait()
            self.precompiler = None

    @torch.inference_mode()
    def _warm_up_sampler(self) -> None:
        """Compile the one-pass temperature sampler now rather than in the first step that
        samples with a temperature (one variant serves every batch size)."""
        batch = SamplingBatch(temperature=torch.ones(1, device=self.device), top_k=None, top_p=None, min_p=None)
        sample(torch.zeros(1, self.vocab_size, device=self.device), batch, None)
        torch.cuda.synchronize(self.device)

    def release(self) -> None:
        """Give the device memory back (graphs, KV cache, weights) when the engine shuts down,
        without waiting for the garbage collector: another engine may start in this process."""
        if self.graphs is not None:
            self.graphs.release()
            self.graphs = None
        if self.prefill_graphs is not None:
            self.prefill_graphs.release()
            self.prefill_graphs = None
        for layer in kv_cache.attention_layers(self.model):
            layer.k_cache = layer.v_cache = None
        self.kv_caches = []
        self.model = None
        self._last_tokens = None
        # Each parameter's weight_loader is a bound method of its layer: a cycle only the
        # collector frees, and the weights with it.
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    @torch.inference_mode()
    def launch(self, step: StepInput) -> PendingStep:
        """Enqueue the step's device work and return without waiting for it: the engine does
        its host-side work for the previous step meanwhile."""
        for seq_id in step.finished_seq_ids:
            self.sampling.remove(seq_id)
            self.block_tables.remove(seq_id)
        for seq_id in step.preempted_seq_ids:
            self.block_tables.clear(seq_id)
        for new in step.new_sequences:
            self.sampling.add(new)
        if not step.chunks:
            return PendingStep.empty()
        for chunk in step.chunks:
            if chunk.new_block_ids:
                self.block_tables.append(chunk.seq_id, chunk.new_block_ids)
        tables = self.block_tables.gather([c.seq_id for c in step.chunks])
        inp = build_model_input(step, tables, self.config.block_size, self.device, self._last_seq_ids)
        self._fill_pending_tokens(inp)
        prompt_logprobs = {}
        if self.graphs is not None and self.graphs.fits(inp):
            logits = self.graphs.run(inp)  # a decode step: every row samples
        elif (self.prefill_graphs is not None and self.prefill_graphs.fits(inp)
              and step.chunks[0].seq_id not in self.sampling.want_prompt_logprobs):
            logits = self.prefill_graphs.run(inp)  # one sequence's short prompt chunk: its last row samples
        else:
            with attention_metadata(inp.attention):
                hidden = self.model(inp.input_ids, inp.positions)
            prompt_logprobs = self._prompt_logprobs(step, inp, hidden)
            if not inp.sampled_seq_ids:
                return PendingStep.empty(prompt_logprobs)
            logits = self.model.compute_logits(hidden[inp.logits_indices])
        if not is_driver():
            # The driver samples; this rank keeps its tokens for the next step's placeholders.
            tokens = torch.empty(len(inp.sampled_seq_ids), dtype=torch.int64, device=self.device)
            self._keep_last_tokens(inp, broadcast_token_ids(tokens, self.vocab_size))
            return PendingStep.empty()
        batch = self.sampling.batch(inp.sampled_seq_ids, step.grammar)
        result = sample(logits, batch, self.generator)
        self._keep_last_tokens(inp, broadcast_token_ids(result.token_ids, self.vocab_size))
        num_logprobs = ([self.sampling.states[s].params.logprobs for s in inp.sampled_seq_ids] if batch.want_logprobs
                        else [None] * len(inp.sampled_seq_ids))
        return PendingStep.start(inp.sampled_seq_ids, num_logprobs, result, prompt_logprobs)

    def collect(self, pending: PendingStep) -> StepOutput:
        """Wait for a launched step's tokens and hand them over."""
        output = pending.wait()
        for seq_id in self.sampling.reads_outputs.intersection(output.sampled):
            self.sampling.states[seq_id].output_token_ids.append(output.sampled[seq_id].token_id)
        return output

    def _keep_last_tokens(self, inp, tokens: torch.Tensor) -> None:
        self._last_tokens = tokens
        self._last_seq_ids = inp.sampled_seq_ids

    def _fill_pending_tokens(self, inp) -> None:
        """Tokens still being sampled by the previous step are taken from its device output
        (where, build_model_input found)."""
        if inp.pending_in_order:
            inp.input_ids.copy_(self._last_tokens[:len(inp.input_ids)])
        elif inp.pending_positions is not None:
            inp.input_ids.index_copy_(0, inp.pending_positions, self._last_tokens[inp.pending_rows])

    def _prompt_logprobs(self, step: StepInput, inp, hidden: torch.Tensor) -> dict:
        """For sequences that asked prompt_logprobs: the logprob of each prompt token given the
        tokens before it, for the positions this chunk computed."""
        result = {}
        if not self.sampling.want_prompt_logprobs:
            return result
        for i, chunk in enumerate(step.chunks):
            if chunk.seq_id not in self.sampling.want_prompt_logprobs:
                continue
            state = self.sampling.states[chunk.seq_id]
            k = state.params.prompt_logprobs
            prompt = state.prompt_token_ids
            first, last = chunk.start_position, min(chunk.start_position + len(chunk.token_ids), len(prompt) - 1)
            if k is None or first >= last:
                continue
            rows = hidden[int(inp.query_start_loc[i]):int(inp.query_start_loc[i]) + last - first]
            logits = self.model.compute_logits(rows)
            if logits is None:  # another rank than the driver: it took part in the gather
                continue
            logprobs = logits.log_softmax(dim=-1)
            targets = torch.tensor(prompt[first + 1:last + 1], device=logprobs.device)
            chosen = logprobs.gather(1, targets.unsqueeze(1)).squeeze(1)
            ranks = (logprobs > chosen.unsqueeze(1)).sum(dim=-1) + 1
            top_lp, top_ids = logprobs.topk(k, dim=-1) if k else (None, None)
            entries = []
            for j, t in enumerate(targets.tolist()):
                entry = [(t, float(chosen[j]), int(ranks[j]))]
                if k:
                    entry += [(tid, lp, r + 1) for r, (tid, lp) in
                              enumerate(zip(top_ids[j].tolist(), top_lp[j].tolist()))]
                entries.append(entry)
            result[chunk.seq_id] = entries
        return result
