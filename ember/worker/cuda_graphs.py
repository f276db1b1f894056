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


class DecodeGraphs:
    def __init__(self, model: torch.nn.Module, max_num_seqs: int, max_model_len: int, block_size: int,
                 device: torch.device):
        self.model = model
        self.sizes = capture_sizes(max_num_seqs)
        self.max_model_len = max_model_len
        n = self.sizes[-1]
        max_blocks = -(-max_model_len // block_size)
        self.input_ids = torch.zeros(n, dtype=torch.int64, device=device)
        self.positions = torch.zeros(n, dtype=torch.int64, device=device)
        self.slot_mapping = torch.full((n,), -1, dtype=torch.int64, device=device)
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

    @torch.inference_mode()
    def capture(self, pool) -> None:
        """`pool`: a graph memory pool (torch.cuda.graph_pool_handle()), shared with the prefill
        graphs: steps replay one at a time, so their graphs may reuse each other's memory."""
        start = time.perf_counter()
        if tp_size() > 1:  # graphs holding the ranks' collectives must go before the process group
            before_leaving(self.release)
        for n in reversed(self.sizes):  # largest first, so smaller graphs reuse its memory
            captured: dict[object, torch.cuda.CUDAGraph] = {}
            for bound in reversed(self.context_bounds):
                launch = self._launch_key(n, bound)
                if launch not in captured:
                    with attention_metadata(self._metadata(n, bound)):
                        self._forward(n)  # warm up: Triton compiles, cuBLAS picks its kernels
                        torch.cuda.synchronize()
                        graph = torch.cuda.CUDAGraph()
                        with torch.cuda.graph(graph, pool=pool):
                            self._forward(n)
                    captured[launch] = graph
                self.graphs[n, bound] = captured[launch]
        torch.cuda.synchronize()
        distinct = len({id(g) for g in self.graphs.values()})
        logger.info("Captured %d CUDA graphs for %d decode batch sizes (1..%d) x context bounds %s in %.1f s",
                    distinct, len(self.sizes), self.sizes[-1], self.context_bounds, time.perf_counter() - start)

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

    def release(self) -> None:
        for graph in {id(g): g for g in self.graphs.values()}.values():
            graph.reset()
        self.graphs.clear()

    def fits(self, inp: ModelInput) -> bool:
        meta = inp.attention
        return meta.max_query_len == 1 and len(inp.input_ids) <= self.sizes[-1]

    def run(self, inp: ModelInput) -> torch.Tensor | None:
        """Logits [batch, vocab] of a decode step (None on ranks other than the driver)."""
        bs = len(inp.input_ids)
        n = next(s for s in self.sizes if s >= bs)
        meta = inp.attention
        self.input_ids[:bs].copy_(inp.input_ids)
        self.positions[:bs].copy_(inp.positions)
        self.slot_mapping[:bs].copy_(meta.slot_mapping)
        self.slot_mapping[bs:n].fill_(-1)
        self.seq_lens[:bs].copy_(meta.seq_lens)
        self.seq_lens[bs:n].fill_(1)
        width = meta.block_tables.shape[1]
        self.block_tables[:bs, :width].copy_(meta.block_tables)
        bound = next(b for b in self.context_bounds if b >= meta.max_seq_len)
        self.graphs[n, bound].replay()
        return self.logits[:bs] if self.logits is not None else None
