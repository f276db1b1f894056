"""A GGUF file read once: its metadata and tensor table parsed straight from a memory map, its
tensors left in the file until asked for. The `gguf` package's reader builds a numpy view per
metadata element (the vocabulary and merges are ~100k of them: seconds); this reads the same
bytes with `struct` and walks each string array once."""
from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from math import prod

import numpy as np
import torch

# ggml type ids -> (values per block, bytes per block) for the block formats read here.
GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q4_1, GGML_Q8_0, GGML_BF16 = 0, 1, 2, 3, 8, 30
_FLOAT_TYPES = {GGML_F32: torch.float32, GGML_F16: torch.float16, GGML_BF16: torch.bfloat16}

# Metadata value types: fixed-size scalars (struct format), 8 = string, 9 = array.
_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_NUMPY = {0: np.uint8, 1: np.int8, 2: np.uint16, 3: np.int16, 4: np.uint32, 5: np.int32, 6: np.float32,
          7: np.bool_, 10: np.uint64, 11: np.int64, 12: np.float64}


@dataclass(frozen=True)
class GGUFTensor:
    name: str
    shape: tuple[int, ...]   # torch order: [out_features, in_features] for a matrix
    ggml_type: int
    data: np.ndarray         # the raw bytes in the file (memory-mapped)

    def raw(self) -> torch.Tensor:
        """The stored bytes (a copy): [rows, bytes per row] for a block format."""
        return torch.from_numpy(np.array(self.data)).view(self.shape[0] if len(self.shape) > 1 else 1, -1)


@dataclass(frozen=True)
class GGUFFile:
    path: str
    metadata: dict
    tensors: dict[str, GGUFTensor]

    @property
    def architecture(self) -> str:
        return self.metadata["general.architecture"]


@functools.lru_cache(maxsize=4)
def read_gguf(path: str) -> GGUFFile:
    """Cached: the config, the tokenizer and the weights all read the same file."""
    blob = np.memmap(path, mode="r", dtype=np.uint8)
    buf = memoryview(blob)
    if bytes(buf[:4]) != b"GGUF":
        raise ValueError(f"{path} is not a GGUF file")
    version, num_tensors, num_kv = struct.unpack_from("<IQQ", buf, 4)
    if version not in (2, 3):
        raise ValueError(f"{path} is GGUF v{version}; v2 and v3 are read")
    pos, metadata = 24, {}
    for _ in range(num_kv):
        key, pos = _string(buf, pos)
        (kind,) = struct.unpack_from("<I", buf, pos)
        metadata[key], pos = _value(buf, pos + 4, kind)
    infos = []
    for _ in range(num_tensors):
        name, pos = _string(buf, pos)
        (ndim,) = struct.unpack_from("<I", buf, pos)
        dims = struct.unpack_from(f"<{ndim}Q", buf, pos + 4)
        ggml_type, offset = struct.unpack_from("<IQ", buf, pos + 4 + 8 * ndim)
        pos += 4 + 8 * ndim + 12
        infos.append((name, tuple(reversed(dims)), ggml_type, offset))
    alignment = metadata.get("general.alignment", 32)
    data_start = -(-pos // alignment) * alignment
    tensors = {}
    for name, shape, ggml_type, offset in infos:
        start = data_start + offset
        tensors[name] = GGUFTensor(name, shape, ggml_type, blob[start:start + _nbytes(ggml_type, shape)])
    return GGUFFile(path, metadata, tensors)


def _string(buf, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<Q", buf, pos)
    return str(buf[pos + 8:pos + 8 + n], "utf-8", "replace"), pos + 8 + n


def _value(buf, pos: int, kind: int):
    if kind in _SCALAR:
        fmt = "<" + _SCALAR[kind]
        return struct.unpack_from(fmt, buf, pos)[0], pos + struct.calcsize(fmt)
    if kind == 8:
        return _string(buf, pos)
    if kind != 9:
        raise ValueError(f"GGUF metadata value of unknown type {kind}")
    item_kind, count = struct.unpack_from("<IQ", buf, pos)
    pos += 12
    if item_kind in _NUMPY:  # numbers: one vectorized read
        values = np.frombuffer(buf, dtype=_NUMPY[item_kind], count=count, offset=pos)
        return values.tolist(), pos + values.nbytes
    values = []
    for _ in range(count):  # strings (the vocabulary, the merges): each is length-prefixed
        value, pos = _value(buf, pos, item_kind)
        values.append(value)
    return values, pos


def block_shape(ggml_type: int) -> tuple[int, int]:
    """(values per block, bytes per block)."""
    if ggml_type in _FLOAT_TYPES:
        return 1, _FLOAT_TYPES[ggml_type].itemsize
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    return GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]


def _nbytes(ggml_type: int, shape: tuple[int, ...]) -> int:
    values, size = block_shape(ggml_type)
    return prod(shape) // values * size
