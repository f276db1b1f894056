"""GPTQ checkpoints (auto-gptq, gptqmodel, optimum: Qwen's -GPTQ-Int4/-Int8, Qwen v1's -Int4):
`quant_method: gptq`. Each quantized linear layer of K input and N output features stores

  qweight int32 [K / (32 // bits), N]   codes packed along the input dimension, lowest bits first
  qzeros  int32 [G, N / (32 // bits)]   zero points packed along the output dimension
  scales  fp16  [G, N]                  G = ceil(K / group_size), group_size -1 meaning K
  g_idx   int32 [K]                     the group of each input feature

  W[k, n] = scales[g_idx[k], n] * (q[k, n] - z[g_idx[k], n])

auto-gptq's format (`checkpoint_format` "gptq", the default) stores every zero point minus one,
a historical off-by-one its own kernels undo; gptqmodel's "gptq_v2" stores it as is. With
act-order (`desc_act`) g_idx is a permutation of the groups: the loader sorts the input
features by group so the kernel sees contiguous groups, and permutes activations to match."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ember.kernels.quant_packing import unpack_int32
from ember.quantization.int_linear import IntLinearMethod, runs_triton
from ember.quantization.params import add_param

_ZERO_OFFSET = {"gptq": 1, "gptq_v2": 0}


@dataclass(frozen=True)
class GPTQConfig:
    bits: int
    group_size: int
    zero_offset: int  # added to each stored zero point
    exclusions: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: dict) -> "GPTQConfig":
        bits, group_size = int(d.get("bits", 4)), int(d.get("group_size", 128))
        checkpoint_format = d.get("checkpoint_format", "gptq")
        if bits not in (4, 8):
            raise ValueError(f"GPTQ with bits={bits} is not supported (4 and 8 are).")
        if group_size != -1 and group_size < 1:
            raise ValueError(f"GPTQ group_size must be -1 or positive, got {group_size}.")
        if checkpoint_format not in _ZERO_OFFSET:
            raise ValueError(f"GPTQ checkpoint_format {checkpoint_format!r} is not supported "
                             f"({', '.join(_ZERO_OFFSET)} are).")
        if d.get("dynamic") or d.get("lm_head"):
            raise ValueError("GPTQ checkpoints with per-module overrides (`dynamic`) or a quantized "
                             "lm_head are not supported.")
        return cls(bits, group_size, _ZERO_OFFSET[checkpoint_format])

    def linear_method(self, device="cpu") -> "GPTQLinearMethod":
        return GPTQLinearMethod(self, triton=runs_triton(device))


class GPTQLinearMethod(IntLinearMethod):
    def __init__(self, config: GPTQConfig, triton: bool = False, paths=None):
        super().__init__(config.bits, config.group_size, triton, paths)
        self.zero_offset = config.zero_offset

    def create_weights(self, layer, dtype: torch.dtype, device) -> None:
        k, n, per_word = layer.in_features, layer.out_features, 32 // self.bits
        if k % per_word:
            raise ValueError(f"GPTQ needs input features in multiples of {per_word}, got {k}")
        groups, group = self.num_groups(layer), self.checkpoint_group_size()
        add_param(layer, "qweight", torch.zeros(k // per_word, n, dtype=torch.int32, device=device),
                  output_dim=1, input_dim=0, features_per_index=per_word)
        add_param(layer, "qzeros", torch.zeros(groups, n // per_word, dtype=torch.int32, device=device),
                  output_dim=1, rows_per_index=per_word, packed=True, input_dim=0, features_per_index=group)
        add_param(layer, "scales", torch.zeros(groups, n, dtype=dtype, device=device), output_dim=1,
                  input_dim=0, features_per_index=group)
        # q, k and v (gate and up) share their input, so GPTQ gives them one act-order and one
        # g_idx: each part's copy overwrites an equal one. Its values are the checkpoint's
        # group numbers: a row-parallel rank's start at its first group (see below).
        add_param(layer, "g_idx", self._sequential_groups(layer, device) + self.first_group(layer),
                  input_dim=0, has_default=True)

    def _sequential_groups(self, layer, device) -> torch.Tensor:
        return torch.arange(layer.in_features, dtype=torch.int32, device=device) // self.group_size_of(layer)

    def process_weights_after_loading(self, layer) -> None:
        codes = unpack_int32(layer.qweight, self.bits, dim=0)
        zeros = unpack_int32(layer.qzeros, self.bits, dim=1) + self.zero_offset
        sequential = self._sequential_groups(layer, codes.device)
        g_idx = layer.g_idx - self.first_group(layer)
        perm = None
        if not torch.equal(g_idx, sequential):
            if layer.in_features != layer.full_in_features:
                # Act-order mixes groups from the whole input into each rank's slice of it.
                raise ValueError("GPTQ act-order (desc_act) checkpoints cannot split the input features of "
                                 f"{type(layer).__name__} over tensor-parallel ranks: run them with "
                                 "tensor_parallel_size=1.")
            perm = torch.argsort(g_idx, stable=True)
            if not torch.equal(g_idx[perm], sequential):
                raise ValueError("GPTQ g_idx with groups of unequal sizes is not supported")
            codes = codes[perm]
        self.set_kernel_weights(layer, codes, zeros, layer.scales, perm, remove=("qzeros", "g_idx"))
