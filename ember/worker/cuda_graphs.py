"""Decode steps replayed as CUDA graphs. A decode step launches hundreds of small kernels;
captured once per batch size on a ladder, it becomes one launch. The graph ends with the LM
head, since every row of a decode step samples: it yields logits. Inputs live in static
buffers; a batch is padded up to the next captured size (padding rows write no cache slot).

Each size is captured for contexts up to SHORT_CONTEXT tokens and for any context: the
attention kernel picks its split-K layout from the context bound it is given, and a bound of
max_model_len would make short decodes pay for splits and a reduction they do not need. Where
both bounds give the same launch (large batches never split), one graph serves both.

Cold start: the ladder is short (15 sizes up to 256; above 16 sequences a batch is padded by
less than half), and
each graph gets one warm-up forward (Triton compiles its variants there, cuBLAS picks its
kernels); the attention kernel takes the split count at run time, so sizes share variants."""
from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from typing import Callable

import torch

from ember.distributed.parallel_state import before_leaving, is_driver, tp_size
from ember.kernels import paged_attention as triton_attention
from ember.models.layers.attention import AttentionMetadata, attention_metadata
from ember.worker.input_batch import ModelInput
from ember.worker.kv_cache import attention_layers

logger = logging.getLogger(__name__)

SHORT_CONTEXT = 512


# Steps of at most ~1.5x up to 32, then ~1.33x down to ~1.14x: little padding, few graphs.
LADDER = [1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 224, 256] + list(range(320, 1024 + 1, 64))


def context_bounds(max_model_len: int) -> list[int]:
    return sorted({min(SHORT_CONTEXT, max_model_len), max_model_len})


def capture_sizes(max_num_seqs: int) -> list[int]:
    ladder = LADDER
    sizes = [s for s in ladder if s < max_num_seqs] + [max_num_seqs]
    return sorted(set(sizes))


def capture_graph(forward: Callable[[], None], pool) -> torch.cuda.CUDAGraph:
    """forward() captured into a graph of `pool`, after one warm-up run outside it (Triton
    compiles its variants there, cuBLAS picks its kernels)."""
    forward()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool):
        forward()
    return graph


class StepGraphs(ABC):
    """Graphs of one kind of step, keyed as the subclass chooses: captured into a memory pool
    shared with the other kind (steps replay one at a time, so their graphs may reuse each
    other's memory), released before the process group goes under tensor parallelism (the
    graphs hold the ranks' collectives)."""

    graphs: dict

    @torch.inference_mode()
    def capture(self, pool) -> None:
        start = time.perf_counter()
        if tp_size() > 1:
            before_leaving(self.release)
        captured = self._capture(pool)
        torch.cuda.synchronize()
        logger.info("Captured %s in %.1f s", captured, time.perf_counter() - start)

    @abstractmethod
    def _capture(self, pool) -> str:
        """Capture every graph into `pool`; returns what was captured, for the log."""

    def _token_buffers(self, n: int, device: torch.device) -> None:
        self.input_ids = torch.zeros(n, dtype=torch.int64, device=device)
        self.positions = torch.zeros(n, dtype=torch.int64, device=device)
        self.slot_mapping = torch.full((n,), -1, dtype=torch.int64, device=device)

    def _fill_tokens(self, inp: ModelInput, n: int) -> None:
        """The step's tokens into the static buffers, padded to n with rows that write no cache slot."""
        count = len(inp.input_ids)
        self.input_ids[:count].copy_(inp.input_ids)
        self.positions[:count].copy_(inp.positions)
        self.slot_mapping[:count].copy_(inp.attention.slot_mapping)
        self.slot_mapping[count:n].fill_(-1)

    def release(self) -> None:
        for graph in {id(g): g for g in self.graphs.values()}.values():  # a graph may serve several keys
            graph.reset()
        self.graphs.clear()


class DecodeGraphs(StepGraphs):
    def __init__(self, model: torch.nn.Module, max_num_seqs: int, max_model_len: int, block_size: int,
                 device: torch.device):
        self.model = model
        self.sizes = capture_sizes(max_num_seqs)
        self.max_model_len = max_model_len
        n = self.sizes[-1]
        max_blocks = -(-max_model_len // block_size)
        self._token_buffers(n, device)
        self.query_start_loc = torch.arange(n + 1, dtype=torch.int32, device=device)
        self.seq_lens = torch.ones(n, dtype=torch.int32, device=device)
        self.block_tables = torch.zeros(n, max_blocks, dtype=torch.int32, device=device)
        # Logits reach only the driver rank (the LM head gathers them there).
        self.logits = torch.empty(n, model.config.vocab_size, dtype=torch.float32, device=device) \
            if is_driver() else None
        self.context_bounds = context_bounds(max_model_len)
        self.graphs: dict[tuple[int, int], torch.cuda.CUDAGraph] = {}
        self.attention = attention_layers(model)[0]

    def _metadata(self, n: int, context_bound: int) -> AttentionMetadata:
        # max_seq_len is an upper bound: the graph serves every context up to it.
        return AttentionMetadata(self.slot_mapping[:n], self.query_start_loc[:n + 1], self.seq_lens[:n],
                                 self.block_tables[:n], max_query_len=1, max_seq_len=context_bound)

    def _capture(self, pool) -> str:
        for n in reversed(self.sizes):  # largest first, so smaller graphs reuse its memory
            captured: dict[object, torch.cuda.CUDAGraph] = {}
            for bound in reversed(self.context_bounds):
                launch = self._launch_key(n, bound)
                if launch not in captured:
                    with attention_metadata(self._metadata(n, bound)):
                        captured[launch] = capture_graph(lambda: self._forward(n), pool)
                self.graphs[n, bound] = captured[launch]
        distinct = len({id(g) for g in self.graphs.values()})
        return (f"{distinct} CUDA graphs for {len(self.sizes)} decode batch sizes (1..{self.sizes[-1]}) x "
                f"context bounds {self.context_bounds}")

    def _launch_key(self, n: int, bound: int):
        """What the context bound changes in a decode step of n sequences: Ember's Triton
        attention's split count; another attention backend: assume the bound itself."""
        attn = self.attention
        if attn.kernels.paged_attention is not triton_attention.paged_attention:
            return bound
        return triton_attention.decode_num_splits(n, attn.num_heads, attn.num_kv_heads, attn.head_dim, bound,
                                                  self.input_ids.device)

    def _forward(self, n: int) -> None:
        hidden = self.model(self.input_ids[:n], self.positions[:n])
        self.model.compute_logits(hidden, out=self.logits[:n] if self.logits is not None else None)

    def fits(self, inp: ModelInput) -> bool:
        meta = inp.attention
        return meta.max_query_len == 1 and len(inp.input_ids) <= self.sizes[-1]

    def run(self, inp: ModelInput) -> torch.Tensor | None:
        """Logits [batch, vocab] of a decode step (None on ranks other than the driver)."""
        bs = len(inp.input_ids)
        n = next(s for s in self.sizes if s >= bs)
        meta = inp.attention
        self._fill_tokens(inp, n)
        self.seq_lens[:bs].copy_(meta.seq_lens)
        self.seq_lens[bs:n].fill_(1)
        width = meta.block_tables.shape[1]
        self.block_tables[:bs, :width].copy_(meta.block_tables)
        bound = next(b for b in self.context_bounds if b >= meta.max_seq_len)
        self.graphs[n, bound].replay()
        return self.logits[:bs] if self.logits is not None else None
