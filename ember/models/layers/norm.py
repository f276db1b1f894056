from __future__ import annotations

import torch
from torch import nn

from ember.kernels import rmsnorm
from ember.models.layers.dispatch import use_triton


class RMSNorm(nn.Module):
    """RMSNorm, optionally fused with the residual add before it: returns (normed, residual)."""

    def __init__(self, size: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(size), requires_grad=False)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None):
        triton = use_triton(x)
        if residual is None:
            fn = rmsnorm.rms_norm if triton else rmsnorm.rms_norm_ref
            return fn(x, self.weight, self.eps)
        fn = rmsnorm.fused_add_rms_norm if triton else rmsnorm.fused_add_rms_norm_ref
        return fn(x, residual, self.weight, self.eps)
