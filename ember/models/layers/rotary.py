"""Rotary position embedding (NeoX layout, as Llama and Qwen use), with the static scalings
of transformers' `rope_type`s (linear, dynamic, yarn, llama3, ...) taken from transformers'
own init functions so the frequencies match it exactly. `partial_rotary_factor` < 1 rotates
only the leading part of each head (the kernels rotate as many dims as the cache holds)."""
from __future__ import annotations

import copy

import torch
from torch import nn

from ember.models.hf_config import rope_settings, set_rope_scaling
from ember.models.layers.kernels import LayerKernels


def partial_rotary_factor(config) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    return float(getattr(config, "partial_rotary_factor", None) or params.get("partial_rotary_factor") or 1.0)


def rope_frequencies(config, head_dim: int) -> tuple[torch.Tensor, float]:
    """(inverse frequencies [rotary_dim/2], attention scaling factor)."""
    theta, scaling = rope_settings(config)
    if not scaling:
        rotary_dim = int(head_dim * partial_rotary_factor(config))
        exponents = torch.arange(0, rotary_dim, 2, dtype=torch.int64).float() / rotary_dim
        return 1.0 / (theta ** exponents), 1.0
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    kind = scaling.get("rope_type", scaling.get("type"))
    if kind not in ROPE_INIT_FUNCTIONS:
        raise ValueError(f"rope scaling type {kind!r} is not supported")
    # transformers reads these from a config: give it a copy with every spelling it may look
    # for (4.x and 5.x), so the engine's config stays as loaded.
    config = copy.copy(config)
    set_rope_scaling(config, {**scaling, "rope_type": kind})
    config.rope_theta, config.head_dim = theta, head_dim
    config.partial_rotary_factor = partial_rotary_factor(config)
    seq_len = None
    if kind == "dynamic":
        # Static, as vLLM: the NTK base for the longest context (max_position_embeddings x
        # factor), not transformers' per-forward recomputation for the current length.
        seq_len = int(config.max_position_embeddings * scaling["factor"])
    inv_freq, attention_factor = ROPE_INIT_FUNCTIONS[kind](config, "cpu", seq_len=seq_len)
    return inv_freq.float(), float(attention_factor)


class RotaryEmbedding(nn.Module):
    def __init__(self, config, head_dim: int, max_position: int, kernels: LayerKernels):
        super().__init__()
        self.kernels = kernels
        inv_freq, attention_factor = rope_frequencies(config, head_dim)
        t = torch.arange(max_position, dtype=torch.float)
        # Scaled frequencies come from transformers on the CPU; the cache lives with the model.
        freqs = torch.outer(t, inv_freq.to(t.device))
        cache = torch.cat([freqs.cos(), freqs.sin()], dim=-1) * attention_factor
        self.register_buffer("cos_sin_cache", cache, persistent=False)

    def forward(self, positions: torch.Tensor, q: torch.Tensor, k: torch.Tensor):
        """q [T, Hq, D], k [T, Hk, D] -> rotated (q, k)."""
        return self.kernels.rotary(q, k, positions, self.cos_sin_cache)
