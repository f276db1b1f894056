"""What GPTQ and AWQ layers share once loaded: their codes, zero points and scales converted
into the one layout the int GEMM reads (ember/kernels/quant_int_gemm.py), still packed, and the
forward pass through that kernel on the GPU or its dequantize-then-matmul reference elsewhere."""
from __future__ import annotations

import torch

from ember.kernels.quant_int_gemm import int_gemm, int_gemm_ref
from ember.kernels.quant_packing import pack_int32
from ember.models.layers.dispatch import use_triton
from ember.quantization.params import replace_params


class IntLinearMethod:
    """Base of the GPTQ and AWQ methods: `bits` per weight, `group_size` input features per
    scale and zero point (-1: the whole input)."""

    def __init__(self, bits: int, group_size: int):
        self.bits, self.group_size = bits, group_size

    def group_size_of(self, layer) -> int:
        return layer.in_features if self.group_size == -1 else self.group_size

    def num_groups(self, layer) -> int:
        return -(-layer.in_features // self.group_size_of(layer))

    def checkpoint_group_size(self) -> int | None:
        """Input features per index of the checkpoint's group tensors; None: one group for the
        whole input, which every tensor-parallel rank keeps."""
        return None if self.group_size == -1 else self.group_size

    def first_group(self, layer) -> int:
        """The checkpoint's number of this rank's first group (0 unless a row-parallel rank)."""
        return 0 if self.group_size == -1 else layer.input_start // self.group_size

    def set_kernel_weights(self, layer, codes: torch.Tensor, zeros: torch.Tensor, scales: torch.Tensor,
                           perm: torch.Tensor | None, remove: tuple[str, ...]) -> None:
        """codes [K, N] (rows in `perm` order), zeros and scales [G, N]: the kernel's layout
        replaces the checkpoint's tensors named in `remove`."""
        replace_params(layer, **dict.fromkeys(remove),
                       qweight=pack_int32(codes, self.bits, dim=0),
                       scales=scales.contiguous(), zeros=zeros.to(scales.dtype).contiguous(), perm=perm)

    def apply(self, layer, x: torch.Tensor) -> torch.Tensor:
        """x @ W^T without the bias: the layer adds it (after the all-reduce when row-parallel)."""
        rows = x.reshape(-1, x.shape[-1])
        gemm = int_gemm if use_triton(rows) else int_gemm_ref
        out = gemm(rows, layer.qweight, layer.scales, layer.zeros, self.bits, self.group_size_of(layer),
                   getattr(layer, "perm", None))
        return out.reshape(*x.shape[:-1], out.shape[-1])
