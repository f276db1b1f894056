"""A step of one short prompt chunk replayed as a CUDA graph. The first step of a lone request
(the latency benchmark's prefill, the time to first token of a small request on an idle server)
computes one sequence's prompt: eagerly, the host launches every layer's kernels one by one
(~26 ms for 64 tokens of the 7B shape on the H200, ~4 ms of it GPU work). Captured, it is one
launch, like a decode step.

The chunk is padded up to the next size of a short ladder (16 to 512 tokens, doubling; capped
by max_num_batched_tokens and max_model_len): at most 6 graphs, each with one warm-up forward,
since they are captured at every cold start. Padding tokens belong to no sequence
(query_start_loc stays [0, q_len]), so attention neither attends nor writes them, and they own
no cache slot (-1). Only the last real row reaches the LM head: the graph yields its logits.
Every size is captured for contexts up to SHORT_CONTEXT tokens: a prompt that long or a late
chunk of a longer one runs eagerly. The ladder stays below LONG_Q_LEN, whose lone long
sequences go to cuDNN with exact lengths.

Under tensor parallelism every rank replays the same graph for the same step."""
from __future__ import annotations

import torch

from ember.distributed.parallel_state import is_driver
from ember.models.layers.attention import AttentionMetadata, attention_metadata
from ember.worker.cuda_graphs import SHORT_CONTEXT, StepGraphs, capture_graph
from ember.worker.input_batch import ModelInput

LADDER = [16, 32, 64, 128, 256, 512]


def capture_sizes(max_num_batched_tokens: int, max_model_len: int) -> list[int]:
    largest = min(LADDER[-1], max_num_batched_tokens, max_model_len)
    return [s for s in LADDER if s < largest] + [largest]


class PrefillGraphs(StepGraphs):
    def __init__(self, model: torch.nn.Module, max_num_batched_tokens: int, max_model_len: int, block_size: int,
                 device: torch.device):
        self.model = model
        self.sizes = capture_sizes(max_num_batched_tokens, max_model_len)
        self.context_bound = min(SHORT_CONTEXT, max_model_len)
        n = self.sizes[-1]
        self._token_buffers(n, device)
        # A one-token sequence until the first step: what the warm-ups and captures run.
        self.query_start_loc = torch.tensor([0, 1], dtype=torch.int32, device=device)
        self.seq_lens = torch.ones(1, dtype=torch.int32, device=device)
        self.block_tables = torch.zeros(1, -(-self.context_bound // block_size), dtype=torch.int32, device=device)
        self.last_row = torch.zeros(1, dtype=torch.int64, device=device)
        # Logits reach only the driver rank (the LM head gathers them there).
        self.logits = torch.empty(1, model.config.vocab_size, dtype=torch.float32, device=device) \
            if is_driver() else None
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}

    def fits(self, inp: ModelInput) -> bool:
        """One sequence's chunk of more than one token (one token is a decode graph's), up to
        the largest size, that samples its last row, in a context within the bound."""
        q_len = len(inp.input_ids)
        return (len(inp.query_start_loc) == 2 and len(inp.sampled_seq_ids) == 1 and 1 < q_len <= self.sizes[-1]
                and inp.attention.max_seq_len <= self.context_bound)

    def fill(self, inp: ModelInput) -> int:
        """Copy a step that fits into the static buffers; returns the size it is padded to.
        Padding keeps whatever ids and positions an earlier step left (valid ones: their rows
        are computed and never read) but must write no cache slot."""
        q_len = len(inp.input_ids)
        n = next(s for s in self.sizes if s >= q_len)
        meta = inp.attention
        self._fill_tokens(inp, n)
        self.query_start_loc.copy_(meta.query_start_loc)
        self.seq_lens.copy_(meta.seq_lens)
        # The table may hold blocks past the context (appended ahead); attention reads none of them.
        width = min(meta.block_tables.shape[1], self.block_tables.shape[1])
        self.block_tables[:, :width].copy_(meta.block_tables[:, :width])
        self.last_row.copy_(inp.logits_indices)
        return n

    def run(self, inp: ModelInput) -> torch.Tensor | None:
        """Logits [1, vocab] of the chunk's last token (None on ranks other than the driver)."""
        self.graphs[self.fill(inp)].replay()
        return self.logits

    def _metadata(self, n: int) -> AttentionMetadata:
        # Both maxima are upper bounds: they pick the attention's launch, the buffers hold the step.
        return AttentionMetadata(self.slot_mapping[:n], self.query_start_loc, self.seq_lens, self.block_tables,
                                 max_query_len=n, max_seq_len=self.context_bound)

    def _forward(self, n: int) -> None:
        hidden = self.model(self.input_ids[:n], self.positions[:n])
        self.model.compute_logits(hidden.index_select(0, self.last_row), out=self.logits)

    def _capture(self, pool) -> str:
        for n in reversed(self.sizes):  # largest first, so smaller graphs reuse its memory
            with attention_metadata(self._metadata(n)):
                self.graphs[n] = capture_graph(lambda: self._forward(n), pool)
        return (f"{len(self.graphs)} CUDA graphs for one sequence's prompt chunk ({', '.join(map(str, self.sizes))} "
                f"tokens, contexts up to {self.context_bound})")
