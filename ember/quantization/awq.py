"""AWQ checkpoints (AutoAWQ's GEMM version: Qwen's -AWQ models): `quant_method: awq`, 4 bits,
zero points. Each quantized linear layer of K input and N output features stores

  qweight int32 [K, N / 8]   codes packed along the output dimension, 8 per word in the order
                             [0, 2, 4, 6, 1, 3, 5, 7] (the word's i-th code is column order[i])
  qzeros  int32 [G, N / 8]   zero points, packed the same way
  scales  fp16  [G, N]       G = K / group_size

  W[k, n] = scales[k // group_size, n] * (q[k, n] - z[k // group_size, n])

Unlike GPTQ, no zero-point offset and no act-order. Older AutoAWQ files spell the settings
`w_bit` and `q_group_size` (quant_config.json)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ember.kernels.quant_packing import AWQ_ORDER, unpack_int32
from ember.quantization.int_linear import IntLinearMethod, runs_triton
from ember.quantization.params import add_param

_BITS = 4
_PER_WORD = 32 // _BITS


@dataclass(frozen=True)
class AWQConfig:
    group_size: int
    exclusions: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: dict) -> "AWQConfig":
        bits = int(d.get("bits", d.get("w_bit", _BITS)))
        group_size = int(d.get("group_size", d.get("q_group_size", 128)))
        version = str(d.get("version", "gemm")).lower()
        if bits != _BITS:
            raise ValueError(f"AWQ with bits={bits} is not supported (4 is).")
        if version != "gemm":
            raise ValueError(f"AWQ version {version!r} is not supported (the GEMM layout is).")
        if not d.get("zero_point", True):
            raise ValueError("AWQ without zero points (zero_point: false) is not supported.")
        if group_size != -1 and group_size < 1:
            raise ValueError(f"AWQ group_size must be -1 or positive, got {group_size}.")
        return cls(group_size, tuple(d.get("modules_to_not_convert") or ()))

    def linear_method(self, device="cpu") -> "AWQLinearMethod":
        return AWQLinearMethod(self.group_size, triton=runs_triton(device))


class AWQLinearMethod(IntLinearMethod):
    def __init__(self, group_size: int, triton: bool = False, paths=None):
        super().__init__(_BITS, group_size, triton, paths)

    def create_weights(self, layer, dtype: torch.dtype, device) -> None:
        k, n, groups = layer.in_features, layer.out_features, self.num_groups(layer)
        packed = dict(output_dim=1, rows_per_index=_PER_WORD, packed=True, input_dim=0)
        grouped = dict(input_dim=0, features_per_index=self.checkpoint_group_size())
        add_param(layer, "qweight", torch.zeros(k, n // _PER_WORD, dtype=torch.int32, device=device), **packed)
        add_param(layer, "qzeros", torch.zeros(groups, n // _PER_WORD, dtype=torch.int32, device=device),
                  **{**packed, **grouped})
        add_param(layer, "scales", torch.zeros(groups, n, dtype=dtype, device=device), output_dim=1, **grouped)

    def process_weights_after_loading(self, layer) -> None:
        codes = unpack_int32(layer.qweight, _BITS, dim=1, order=AWQ_ORDER)
        zeros = unpack_int32(layer.qzeros, _BITS, dim=1, order=AWQ_ORDER)
        self.set_kernel_weights(layer, codes, zeros, layer.scales, None, remove=("qzeros",))
