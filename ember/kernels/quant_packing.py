"""Integer codes packed into int32 words, as GPTQ and AWQ checkpoints store them: a word holds
32 // bits codes along one dimension, the first at the lowest bits. AWQ also permutes the codes
inside a word; `order[i]` names the position (within the word's run) that code i belongs to."""
from __future__ import annotations

import torch

__all__ = ["AWQ_ORDER", "pack_int32", "unpack_int32"]

# AutoAWQ's GEMM layout: the word's i-th 4-bit code is column order[i] of its 8 columns.
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)


def unpack_int32(packed: torch.Tensor, bits: int, dim: int, order=None) -> torch.Tensor:
    """int32 words -> int32 codes in [0, 2**bits), `dim` growing by 32 // bits."""
    shifts = torch.arange(0, 32, bits, dtype=torch.int32, device=packed.device)
    words = packed.movedim(dim, -1)
    codes = (words.unsqueeze(-1) >> shifts) & ((1 << bits) - 1)  # [..., words, codes per word]
    if order is not None:
        codes = codes[..., torch.argsort(torch.tensor(order, device=packed.device))]
    return codes.reshape(*words.shape[:-1], -1).movedim(-1, dim)


def pack_int32(codes: torch.Tensor, bits: int, dim: int, order=None) -> torch.Tensor:
    """The inverse of unpack_int32: codes in [0, 2**bits) -> int32 words along `dim`."""
    per_word = 32 // bits
    values = codes.movedim(dim, -1).to(torch.int64)
    values = values.reshape(*values.shape[:-1], -1, per_word)
    if order is not None:
        values = values[..., list(order)]
    shifts = torch.arange(0, 32, bits, dtype=torch.int64, device=codes.device)
    words = (values << shifts).sum(-1)
    words = torch.where(words >= 2 ** 31, words - 2 ** 32, words)  # the bit pattern as a signed int32
    return words.to(torch.int32).movedim(-1, dim).contiguous()
