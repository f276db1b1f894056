"""FP8 checkpoints: `quant_method: fp8`, weights in float8_e4m3fn [N, K], of two kinds.

- Per-tensor (AutoFP8, llm-compressor): `weight_scale` fp32, one per tensor, and `input_scale`
  when `activation_scheme` is "static". W = weight * weight_scale.
- Block-wise (Qwen3-*-FP8, DeepSeek's layout): `weight_block_size: [bn, bk]` and
  `weight_scale_inv` fp32 [ceil(N / bn), ceil(K / bk)]; despite its name the factor that
  dequantizes: W[n, k] = weight[n, k] * weight_scale_inv[n // bn, k // bk].

A fused layer's parts (q/k/v, gate/up) each bring their own scales: per-tensor one each,
block-wise their own rows of blocks (a part's last row of blocks is partial when its rows are
not a multiple of bn), so no part is requantized.

How it runs, chosen when the model is built:
- on a GPU with fp8 tensor cores (compute capability >= 8.9, where cuBLAS's row-wise scaled
  GEMM runs): W8A8, activations quantized on the fly per token (per token and 1x128 group for
  block-wise weights), as vLLM does; a static input_scale is read and unused (dynamic scales
  fit each token); gemm_paths.FP8_PATHS / FP8_BLOCK_PATHS pick cuBLAS or Triton by M, and for
  decode batches of a few rows the weight-only paths, which quantize no activations (one launch
  per GEMM instead of two or four, and the activations unrounded): the one-row GEMV
  (ember/kernels/gemv.py, per-row scales) and the W8A16 kernel (quant_fp8_w8a16_gemm.py: bf16
  tensor cores on the widened weight);
- elsewhere: W8A16, the fp8 weight widened to the activation dtype in the GEMM's tile loop
  (Triton on a GPU, plain torch on the CPU).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ember.kernels.gemv import gemv
from ember.kernels.quant_fp8_act import quantize_fp8
from ember.kernels.quant_fp8_dequant import dequantize_fp8_dense
from ember.kernels.quant_fp8_gemm import fp8_gemm, fp8_gemm_ref
from ember.kernels.quant_fp8_scaled_mm import scaled_mm_blockwise, scaled_mm_recipes, scaled_mm_rowwise
from ember.kernels.quant_fp8_w8a16_gemm import fp8_w8a16_gemm
from ember.kernels.quant_fp8_w8a8_gemm import fp8_w8a8_gemm
from ember.quantization.gemm_paths import FP8_BLOCK_PATHS, FP8_BLOCK_PATHS_NO_CUBLAS, FP8_PATHS, path_for
from ember.quantization.int_linear import runs_triton
from ember.quantization.params import add_param, output_parts, replace_params

# cuBLAS's block-wise recipe: 1x128 activation groups, 128x128 weight blocks.
_CUBLAS_BLOCK = (128, 128)


def has_fp8_tensor_cores(device) -> bool:
    device = torch.device(device)
    return runs_triton(device) and torch.cuda.get_device_capability(device) >= (8, 9) and \
        "rowwise" in scaled_mm_recipes(str(device))


@dataclass(frozen=True)
class FP8Config:
    block_size: tuple[int, int] | None  # (bn, bk), or None: per-tensor scales
    static_activations: bool            # checkpoint carries input_scale
    exclusions: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: dict) -> "FP8Config":
        scheme = d.get("activation_scheme", "dynamic")
        if scheme not in ("static", "dynamic"):
            raise ValueError(f"FP8 activation_scheme {scheme!r} is not supported (static, dynamic are).")
        if d.get("fmt", "e4m3") != "e4m3":
            raise ValueError(f"FP8 weights in {d['fmt']!r} are not supported (e4m3 are).")
        block = d.get("weight_block_size")
        if block is not None and (len(block) != 2 or min(block) < 1):
            raise ValueError(f"FP8 weight_block_size must be [rows, columns], got {block}.")
        exclusions = tuple(d.get("ignored_layers") or ()) + tuple(d.get("modules_to_not_convert") or ())
        return cls(tuple(block) if block else None, scheme == "static", exclusions)

    def linear_method(self, device="cpu") -> "FP8LinearMethod":
        if has_fp8_tensor_cores(device):
            return FP8W8A8LinearMethod(self, triton=True)
        return FP8LinearMethod(self, triton=runs_triton(device))


class FP8LinearMethod:
    """W8A16: the fp8 weight widened in the tile loop (Triton), or dequantized (CPU).
    `triton`: chosen once, for the model's device."""

    def __init__(self, config: FP8Config, triton: bool = False):
        self.config = config
        self.gemm = fp8_gemm if triton else fp8_gemm_ref

    def create_weights(self, layer, dtype: torch.dtype, device) -> None:
        n, k = layer.out_features, layer.in_features
        add_param(layer, "weight", torch.zeros(n, k, dtype=torch.float8_e4m3fn, device=device), output_dim=0,
                  input_dim=1)
        scalar = dict(output_dim=0, per_part=True)
        if self.config.block_size is None:
            add_param(layer, "weight_scale", torch.zeros(len(output_parts(layer)), device=device), **scalar)
        else:
            bn, bk = self.config.block_size
            rows = sum(-(-size // bn) for _, size in output_parts(layer))
            add_param(layer, "weight_scale_inv", torch.zeros(rows, -(-k // bk), device=device),
                      output_dim=0, rows_per_index=bn, input_dim=1, features_per_index=bk)
        if self.config.static_activations:
            add_param(layer, "input_scale", torch.zeros(len(output_parts(layer)), device=device), **scalar)

    def block_k(self, layer) -> int:
        return layer.in_features if self.config.block_size is None else self.config.block_size[1]

    def process_weights_after_loading(self, layer) -> None:
        """One scale table and the scale row of every output row: per-tensor, row = the part;
        block-wise, row = the part's first block row + the row's block within the part."""
        bn = self.config.block_size[0] if self.config.block_size else None
        rows, first = [], 0
        for index, (_, size) in enumerate(output_parts(layer)):
            local = torch.arange(size, device=layer.weight.device)
            rows.append(torch.full_like(local, index) if bn is None else first + local // bn)
            first += 1 if bn is None else -(-size // bn)
        scale = layer.weight_scale[:, None] if bn is None else layer.weight_scale_inv
        replace_params(layer, weight_scale=None, weight_scale_inv=None, input_scale=None,
                       scale=scale.float().contiguous(), scale_row=torch.cat(rows).to(torch.int32))

    def apply(self, layer, x: torch.Tensor) -> torch.Tensor:
        """x @ W^T without the bias: the layer adds it (after the all-reduce when row-parallel)."""
        rows = x.reshape(-1, x.shape[-1])
        out = self.gemm(rows, layer.weight, layer.scale, layer.scale_row, self.block_k(layer))
        return out.reshape(*x.shape[:-1], out.shape[-1])


class FP8W8A8LinearMethod(FP8LinearMethod):
    """W8A8 on fp8 tensor cores: activations quantized per token (and per block_k group for
    block-wise weights) at every call, then the path of FP8_PATHS / FP8_BLOCK_PATHS for the
    call's M: the one-row GEMV (per-tensor weights) or the W8A16 kernel for a few rows
    (unquantized activations), the Triton W8A8 kernel,
    the dense weight for cuBLAS's bf16 GEMM (block-wise weights at large M without cuBLAS's
    block-wise recipe; unquantized activations), or cuBLAS (per-row weight scales to its row-wise GEMM,
    128x128 blocks to its block-wise GEMM where this torch runs it and the layer's blocks are
    regular: no fused part ends in a partial block; else the Triton kernel)."""

    def process_weights_after_loading(self, layer) -> None:
        super().process_weights_after_loading(layer)
        n, k = layer.weight.shape
        block = self.config.block_size
        self.paths = FP8_PATHS if block is None else FP8_BLOCK_PATHS
        if block is None:
            # One scale per output row, for the row-wise recipe.
            replace_params(layer, row_scale=layer.scale[layer.scale_row.long(), 0][None, :].contiguous())
            self.cublas = "rowwise"
            return
        regular = torch.equal(layer.scale_row.long(), torch.arange(n, device=layer.scale_row.device) // block[0])
        cublas = tuple(block) == _CUBLAS_BLOCK and regular and n % block[0] == 0 and k % block[1] == 0 and \
            "blockwise" in scaled_mm_recipes(str(layer.weight.device))
        self.cublas = "blockwise" if cublas else None
        if not cublas:
            self.paths = FP8_BLOCK_PATHS_NO_CUBLAS

    def apply(self, layer, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1]).contiguous()
        path = path_for(self.paths, rows.shape[0])
        if path == "w8a16-gemv":
            out = gemv(rows, layer.weight, row_scale=layer.row_scale[0])
        elif path == "w8a16-triton":
            out = fp8_w8a16_gemm(rows, layer.weight, layer.scale, layer.scale_row, self.block_k(layer))
        elif path == "dequant":
            out = F.linear(rows, dequantize_fp8_dense(layer.weight, layer.scale, layer.scale_row, self.block_k(layer),
                                                      x.dtype))
        else:
            out = self._w8a8(layer, rows, "triton" if path == "w8a8-triton" or not self.cublas else self.cublas)
        return out.reshape(*x.shape[:-1], out.shape[-1])

    def _w8a8(self, layer, rows: torch.Tensor, kernel: str) -> torch.Tensor:
        group = None if self.config.block_size is None else self.config.block_size[1]
        a, a_scale = quantize_fp8(rows, group, column_major_scales=kernel == "blockwise")
        if kernel == "rowwise":
            return scaled_mm_rowwise(a, a_scale, layer.weight, layer.row_scale, rows.dtype)
        if kernel == "blockwise":
            return scaled_mm_blockwise(a, a_scale, layer.weight, layer.scale, rows.dtype)
        return fp8_w8a8_gemm(a, a_scale, layer.weight, layer.scale, layer.scale_row, self.block_k(layer), rows.dtype)
