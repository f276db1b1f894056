"""What GPTQ and AWQ layers share once loaded: their codes, zero points and scales converted
into the strip layout (ember/kernels/quant_int_strips.py) or the Marlin layout, still packed,
and the forward pass. Chosen when the model is built, by device:
- GPU: the words shuffled into strips at load; per call, the path of gemm_paths.INT4_PATHS or
  STRIPS_PATHS for the call's M (the GEMV kernel, the tensor-core tiled kernel, or
  dequantize-then-cuBLAS); or, for int4 under a table of the Marlin layout's paths, the codes
  repacked into that layout (ember/kernels/quant_int_marlin_layout.py) for the Marlin-style
  kernel, its one-row GEMV or its dequantize-then-cuBLAS;
- elsewhere: the checkpoint layout, dequantized and multiplied in plain torch."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ember.kernels import triton_available
from ember.kernels.quant_int_gemv import int_gemv
from ember.kernels.quant_int_marlin_dequant import dequantize_marlin_t
from ember.kernels.quant_int_marlin_gemm import marlin_gemm
from ember.kernels.quant_int_marlin_gemv import marlin_gemv
from ember.kernels.quant_int_marlin_layout import to_marlin
from ember.kernels.quant_int_strips import dequantize_int_strips, int_gemm_ref, to_strips
from ember.kernels.quant_int_tiled_gemm import int_tiled_gemm
from ember.kernels.quant_packing import pack_int32
from ember.quantization.gemm_paths import INT4_PATHS, STRIPS_PATHS, path_for, reads_marlin_layout
from ember.quantization.params import replace_params

# Output columns per strip of the GPU layout: a multiple of every kernel tile's BLOCK_N.
STRIP = 128


def runs_triton(device) -> bool:
    return torch.device(device).type == "cuda" and triton_available()


class IntLinearMethod:
    """Base of the GPTQ and AWQ methods: `bits` per weight, `group_size` input features per
    scale and zero point (-1: the whole input). `triton`: the GPU layout and kernels (True on
    a GPU; the kernel tests also run them on the CPU under Triton's interpreter). `paths`: the
    GEMM table: unless given (the tests give others), gemm_paths.INT4_PATHS for int4 in groups
    of a multiple of 16 features (or one group), else STRIPS_PATHS."""

    def __init__(self, bits: int, group_size: int, triton: bool = False, paths=None):
        self.bits, self.group_size, self.triton = bits, group_size, triton
        marlin_groups = group_size == -1 or group_size % 16 == 0
        self.paths = paths or (INT4_PATHS if bits == 4 and marlin_groups else STRIPS_PATHS)
        self.marlin = reads_marlin_layout(self.paths)
        if self.marlin and bits != 4:
            raise ValueError(f"the Marlin layout's paths take int4 weights, not int{bits}")

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
        if self.triton and self.marlin:
            group = self.group_size_of(layer)
            if group < layer.in_features and group % 16:
                raise ValueError(f"the Marlin layout's kernels need groups of a multiple of 16 input features, "
                                 f"got {group}")
            qweight = to_marlin(codes)
        else:
            qweight = pack_int32(codes, self.bits, dim=0)
            if self.triton:
                qweight = to_strips(qweight, STRIP)
        replace_params(layer, **dict.fromkeys(remove), qweight=qweight,
                       scales=scales.contiguous(), zeros=zeros.to(scales.dtype).contiguous(), perm=perm)

    def apply(self, layer, x: torch.Tensor) -> torch.Tensor:
        """x @ W^T without the bias: the layer adds it (after the all-reduce when row-parallel)."""
        rows = x.reshape(-1, x.shape[-1])
        perm = getattr(layer, "perm", None)
        if not self.triton:
            out = int_gemm_ref(rows, layer.qweight, layer.scales, layer.zeros, self.bits, self.group_size_of(layer),
                               perm)
            return out.reshape(*x.shape[:-1], out.shape[-1])
        rows = rows[:, perm] if perm is not None else rows.contiguous()
        group = self.group_size_of(layer)
        args = (layer.qweight, layer.scales, layer.zeros, self.bits, group)
        path = path_for(self.paths, rows.shape[0])
        if path == "marlin":
            out = marlin_gemm(rows, layer.qweight, layer.scales, layer.zeros, group)
        elif path == "marlin-gemv":
            out = marlin_gemv(rows, layer.qweight, layer.scales, layer.zeros, group)
        elif path == "marlin-dequant":
            out = F.linear(rows, dequantize_marlin_t(layer.qweight, layer.scales, layer.zeros, group))
        elif path == "gemv":
            out = int_gemv(rows, *args)
        elif path == "tiled":
            out = int_tiled_gemm(rows, *args)
        else:
            out = rows @ dequantize_int_strips(*args)
        return out.reshape(*x.shape[:-1], out.shape[-1])
