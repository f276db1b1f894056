"""GGUF weights kept small on the CPU, multiplied by PyTorch's CPU weight-only kernels.

A linear layer receives its checkpoint parts (q, k, v of a fused projection; gate and up) as
GGUF blocks. Once loaded:
- every part 4-bit (Q4_0, Q4_1: 32 weights per scale): torch's int4 layout,
  `_weight_int4pack_mm_for_cpu`, bf16 activations. GGUF's `code * scale + offset` maps exactly
  onto torch's `(code - 8) * scale + zero` with zero = offset + 8 * scale; the bf16 rounding of
  scale and zero is the only change (the kernel reads them in the activation dtype);
- anything else (Q8_0, K-quants, floats): dequantized once to a bf16 matrix, oneDNN's GEMM.
Measured on a 2-core AMD EPYC (avx512_bf16), one token: int4 bf16 ~16 us for a 832x576 layer
where fp32 dense takes ~45 us and int4 with fp32 activations ~1.4 ms (no vectorized path), so
the path runs bf16 activations only.

The int4 kernel's cost grows almost linearly with the rows (one thread, 3072x576: 46 us for 1
row, 169 for 8, 328 for 16) while oneDNN's bf16 GEMM barely does (104, 138, 191 us), so a 4-bit
layer also keeps its dequantized bf16 matrix for steps of DENSE_FROM_ROWS rows or more (batched
decodes, prefills): 4x the bytes of its blocks, ~0.2 GiB more for SmolLM2-135M."""
from __future__ import annotations

import torch

from ember.quantization.gguf_blocks import BLOCK, FOUR_BIT_TYPES, dequantize, four_bit_codes

INT4_DTYPE = torch.bfloat16
DENSE_FROM_ROWS = 8
# The op's overload itself: a packet (torch.ops.aten.x) resolves its overload on every call.
_INT4_MM = getattr(getattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu", None), "default", None)


def cpu_int4_available() -> bool:
    return hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu") and \
        hasattr(torch.ops.aten, "_convert_weight_to_int4pack_for_cpu")


def keeps_gguf_blocks(dtype: torch.dtype, device) -> bool:
    """A GGUF checkpoint stays in its blocks for a bf16 model on the CPU; float32 (the path
    equal to transformers) and GPUs get dequantized weights."""
    return torch.device(device).type == "cpu" and dtype == INT4_DTYPE


def cpu_default_dtype(gguf_path: str | None) -> torch.dtype:
    """dtype "auto" on the CPU: bf16 for a GGUF file of 4-bit blocks where the CPU computes
    bf16 natively (avx512_bf16 / AMX), so the int4 kernel runs; float32 otherwise."""
    if gguf_path is None or not cpu_int4_available() or not torch.backends.mkldnn.is_available():
        return torch.float32
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.float32
    from ember.models.gguf_file import read_gguf

    types = {t.ggml_type for t in read_gguf(gguf_path).tensors.values()}
    return INT4_DTYPE if types & set(FOUR_BIT_TYPES) else torch.float32


class GGUFCPULinearMethod:
    """After loading, the layer holds `dense` (bf16 [out, in]) and, for 4-bit blocks, also
    `packed` (int4 layout) and `scale_and_zero` ([in_features / 32, out_features, 2], bf16), as
    buffers."""

    def __init__(self):
        self.parts: dict = {}  # shard id (None: the whole layer) -> (ggml type, raw rows, shape)
        # The layer's buffers, also held here: a module's buffer lookup goes through
        # nn.Module.__getattr__ (~1 us; 4 layers x 30 a decode step).
        self.packed = self.scale_and_zero = self.dense = None

    def load_part(self, shard_id, ggml_type: int, raw: torch.Tensor, shape: tuple[int, ...]) -> None:
        self.parts[shard_id] = (ggml_type, raw, shape)

    def process_weights_after_loading(self, layer) -> None:
        order = list(getattr(layer, "offsets", {None: None}))  # a fused layer's parts in row order
        parts = [self.parts[name] for name in order]
        self.parts = {}
        if cpu_int4_available() and all(t in FOUR_BIT_TYPES for t, _, _ in parts):
            codes, scales, offsets = zip(*(four_bit_codes(raw, t) for t, raw, _ in parts))
            scale, offset = torch.cat(scales), torch.cat(offsets)
            layer.register_buffer("packed", torch.ops.aten._convert_weight_to_int4pack_for_cpu(
                torch.cat(codes), 8))
            layer.register_buffer("scale_and_zero", torch.stack([scale, offset + 8 * scale], dim=-1)
                                  .transpose(0, 1).contiguous().to(INT4_DTYPE))
        layer.register_buffer("dense", torch.cat([dequantize(raw, t, shape) for t, raw, shape in parts])
                              .to(INT4_DTYPE))
        self.packed, self.scale_and_zero = getattr(layer, "packed", None), getattr(layer, "scale_and_zero", None)
        self.dense = layer.dense

    def apply(self, layer, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            return self.apply(layer, x.reshape(-1, x.shape[-1])).view(*x.shape[:-1], -1)
        if x.dtype != INT4_DTYPE:
            x = x.to(INT4_DTYPE)
        if self.packed is not None and x.shape[0] < DENSE_FROM_ROWS:
            return _INT4_MM(x.contiguous(), self.packed, BLOCK, self.scale_and_zero)
        return torch.nn.functional.linear(x, self.dense)


class SmallBatchInt8Head:
    """The LM head (a [vocab, hidden] bf16 matrix: 49152 x 576 for SmolLM2) for the few rows of
    a decode step with few sequences, from an int8 copy with one scale per vocabulary row,
    `_weight_int8pack_mm`: it reads half the bytes. Measured on a 2-core AMD EPYC, one thread:
    1-4 rows ~1.3-1.7 ms against ~3.3 ms in bf16; from ~8 rows bf16 is as fast, at 16 faster
    (4.8 ms against 6.6), so larger batches keep the bf16 matrix. The per-row requantization
    of a Q8_0 table moves logits by ~1% of their range (tests/quantization/test_gguf_cpu.py)."""

    MAX_ROWS = 4

    def __init__(self, weight: torch.Tensor):
        w = weight.float()
        self.scales = (w.abs().amax(dim=1).clamp(min=1e-12) / 127)
        self.rows = torch.round(w / self.scales[:, None]).clamp(-127, 127).to(torch.int8)
        self.scales = self.scales.to(weight.dtype)

    @staticmethod
    def available(weight: torch.Tensor) -> bool:
        return weight.device.type == "cpu" and weight.dtype == INT4_DTYPE and \
            hasattr(torch.ops.aten, "_weight_int8pack_mm")

    def apply(self, layer, hidden: torch.Tensor) -> torch.Tensor:
        if hidden.shape[0] > self.MAX_ROWS or hidden.dtype != self.scales.dtype:
            return torch.nn.functional.linear(hidden, layer.weight)
        return torch.ops.aten._weight_int8pack_mm(hidden.contiguous(), self.rows, self.scales)
