from __future__ import annotations

import torch
from torch import nn

from ember.models.layers.kernels import LayerKernels


class RMSNorm(nn.Module):
    """RMSNorm, optionally fused with the residual add before it: returns (normed, residual)."""

    def __init__(self, size: int, eps: float, kernels: LayerKernels):
        super().__init__()
        self.eps = eps
        self.kernels = kernels
        self.weight = nn.Parameter(torch.ones(size), requires_grad=False)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None):
        if residual is None:
            return self.kernels.rms_norm(x, self.weight, self.eps)
        return self.kernels.fused_add_rms_norm(x, residual, self.weight, self.eps)
