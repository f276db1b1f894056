from __future__ import annotations

import torch
from torch import nn

from ember.kernels import activation
from ember.models.layers.dispatch import use_triton


class SiluAndMul(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fn = activation.silu_and_mul if use_triton(x) else activation.silu_and_mul_ref
        return fn(x)
