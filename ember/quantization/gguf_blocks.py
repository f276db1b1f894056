"""GGUF's block formats in torch: Q4_0, Q4_1 and Q8_0 unpacked without a Python loop over
blocks; any other ggml type dequantized by the `gguf` package. A block is 32 weights of one row
with its own scale (and, in Q4_1, its own minimum)."""
from __future__ import annotations

import torch

from ember.models.gguf_file import GGML_Q4_0, GGML_Q4_1, GGML_Q8_0, _FLOAT_TYPES

BLOCK = 32
FOUR_BIT_TYPES = (GGML_Q4_0, GGML_Q4_1)


def _blocks(raw: torch.Tensor, block_bytes: int) -> torch.Tensor:
    """uint8 [rows, bytes per row] -> [rows, blocks per row, block_bytes]."""
    return raw.view(raw.shape[0], -1, block_bytes)


def _half(blocks: torch.Tensor, start: int) -> torch.Tensor:
    return blocks[..., start:start + 2].contiguous().view(torch.float16).squeeze(-1).float()


def _nibbles(packed: torch.Tensor) -> torch.Tensor:
    """16 bytes -> 32 codes: the low nibbles are weights 0-15, the high ones 16-31."""
    return torch.cat([packed & 0x0F, packed >> 4], dim=-1)


def four_bit_codes(raw: torch.Tensor, ggml_type: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(codes int32 [rows, in_features] in 0..15, scale [rows, groups], offset [rows, groups]):
    weight = code * scale + offset, exactly (Q4_0: offset = -8 * scale; Q4_1: offset = min)."""
    if ggml_type == GGML_Q4_0:
        blocks = _blocks(raw, 18)
        scale = _half(blocks, 0)
        offset = -8 * scale
        codes = _nibbles(blocks[..., 2:])
    elif ggml_type == GGML_Q4_1:
        blocks = _blocks(raw, 20)
        scale, offset = _half(blocks, 0), _half(blocks, 2)
        codes = _nibbles(blocks[..., 4:])
    else:
        raise ValueError(f"ggml type {ggml_type} is not a 4-bit block format")
    return codes.reshape(raw.shape[0], -1).to(torch.int32), scale, offset


def dequantize(raw: torch.Tensor, ggml_type: int, shape: tuple[int, ...]) -> torch.Tensor:
    """float32 (or the file's float type) tensor of `shape` from its stored bytes."""
    if ggml_type in _FLOAT_TYPES:
        return raw.contiguous().view(_FLOAT_TYPES[ggml_type]).reshape(shape)
    if ggml_type in FOUR_BIT_TYPES:
        codes, scale, offset = four_bit_codes(raw, ggml_type)
        rows = codes.shape[0]
        weights = codes.view(rows, -1, BLOCK).float() * scale[..., None] + offset[..., None]
        return weights.reshape(shape)
    if ggml_type == GGML_Q8_0:
        blocks = _blocks(raw, 34)
        codes = blocks[..., 2:].contiguous().view(torch.int8).float()
        return (codes * _half(blocks, 0)[..., None]).reshape(shape)
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize as gguf_dequantize

    return torch.from_numpy(gguf_dequantize(raw.numpy(), GGMLQuantizationType(ggml_type))).reshape(shape)
