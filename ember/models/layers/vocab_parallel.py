"""The [vocab, hidden] table of token embeddings and of the LM head, split by rows over the
tensor-parallel ranks. Each rank holds ceil(vocab / tp) rows; the last slice is padded with
zero rows, so any vocabulary splits. The embedding sums the ranks' lookups (a token's row lives
on one rank, the others contribute zeros); the LM head gathers each rank's slice of the logits
on the driver, which alone samples."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from ember.distributed.communication import all_reduce, gather_on_driver
from ember.distributed.parallel_state import tp_rank, tp_size

# mm with out_dtype (torch 2.11 and 2.13 have it; CUDA only): cuBLAS writes float32 logits from
# 16-bit operands itself, where a 16-bit product and then its float32 copy took ~70 us a decode
# step at 256 rows of Qwen3's vocabulary (H200).
_MM_TO_FLOAT32 = hasattr(torch.ops.aten.mm, "dtype_out")


class VocabParallelEmbedding(nn.Module):
    def __init__(self, vocab_size: int, hidden_size: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.rows = -(-vocab_size // tp_size())
        self.first = tp_rank() * self.rows
        self.weight = nn.Parameter(torch.empty(self.rows, hidden_size), requires_grad=False)
        self.weight.weight_loader = self.load_rows
        # None: logits by F.linear on `weight`. Otherwise an object whose apply(layer, hidden)
        # computes them another way (ember.quantization.gguf_cpu.SmallBatchInt8Head).
        self.head_method = None

    def load_rows(self, param: nn.Parameter, loaded: torch.Tensor, shard_id=None) -> None:
        if loaded.shape != (self.vocab_size, param.shape[1]):
            raise ValueError(f"weight shape {tuple(loaded.shape)} does not match "
                             f"{(self.vocab_size, param.shape[1])}")
        mine = loaded[self.first:self.first + self.rows]
        param.data[:len(mine)].copy_(mine)
        param.data[len(mine):].zero_()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if tp_size() == 1:
            return F.embedding(input_ids, self.weight)
        local = input_ids - self.first
        outside = (local < 0) | (local >= self.rows)
        x = F.embedding(local.masked_fill(outside, 0), self.weight)
        return all_reduce(x.masked_fill(outside.unsqueeze(-1), 0))

    def logits(self, hidden: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor | None:
        """float32 [n, vocab] logits on the driver (written into `out` if given: a decode graph's
        static buffer), None on the other ranks."""
        if (out is not None and _MM_TO_FLOAT32 and hidden.is_cuda and self.head_method is None and tp_size() == 1
                and hidden.dtype in (torch.bfloat16, torch.float16)):
            return torch.mm(hidden, self.weight.t(), out_dtype=torch.float32, out=out)
        product = F.linear(hidden, self.weight) if self.head_method is None else self.head_method.apply(self, hidden)
        logits = gather_on_driver(product)
        if logits is None:
            return None
        logits = logits[:, :self.vocab_size]
        return logits.float() if out is None else out.copy_(logits)
