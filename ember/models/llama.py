"""The Llama decoder, which Qwen2/2.5 (q/k/v bias) and Qwen3 (per-head q/k RMSNorm) extend:
embeddings, N x (RMSNorm, GQA attention with rope, RMSNorm, SwiGLU MLP), RMSNorm, LM head.

Under tensor parallelism every rank builds this same model at its shard's shapes: its share
of the heads and of the MLP, and a slice of the vocabulary; o_proj and down_proj all-reduce."""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ember.distributed.parallel_state import tp_size
from ember.kernels.qk_rotary_kv_write import supports as supports_fused
from ember.models.layers.activation import SiluAndMul
from ember.models.layers.attention import Attention
from ember.models.layers.kernels import LayerKernels
from ember.models.layers.linear import FusedLinear, Linear, QKVLinear, RowParallelLinear
from ember.models.layers.norm import RMSNorm
from ember.models.layers.rotary import RotaryEmbedding
from ember.models.layers.vocab_parallel import VocabParallelEmbedding


def head_dim_of(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


class DecoderAttention(nn.Module):
    def __init__(self, config, rope: RotaryEmbedding, biases: tuple[bool, bool], qk_norm: bool,
                 kernels: LayerKernels):
        super().__init__()
        qkv_bias, o_bias = biases
        num_heads = config.num_attention_heads
        num_kv_heads = getattr(config, "num_key_value_heads", None) or num_heads
        self.head_dim = head_dim_of(config)
        gemv = kernels.one_row_product
        self.qkv_proj = QKVLinear(config.hidden_size, self.head_dim, num_heads, num_kv_heads, qkv_bias, gemv)
        self.o_proj = RowParallelLinear(num_heads * self.head_dim, config.hidden_size, o_bias, gemv)
        # This rank's heads (all of them on one rank; a replicated kv head counts once).
        self.num_heads = num_heads // tp_size()
        self.num_kv_heads = max(1, num_kv_heads // tp_size())
        self.rope = rope
        self.q_norm = RMSNorm(self.head_dim, config.rms_norm_eps, kernels) if qk_norm else None
        self.k_norm = RMSNorm(self.head_dim, config.rms_norm_eps, kernels) if qk_norm else None
        self.attn = Attention(self.num_heads, self.head_dim, self.num_kv_heads, self.head_dim ** -0.5, kernels)
        fused = kernels.qk_rotary_kv_write
        self.fused_prelude = fused if fused is not None and supports_fused(self.head_dim,
                                                                           rope.cos_sin_cache.shape[-1]) else None

    def forward(self, positions: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv_proj(x)
        q = q.view(-1, self.num_heads, self.head_dim)
        k = k.view(-1, self.num_kv_heads, self.head_dim)
        if self.fused_prelude is not None:
            # q/k norm, rotary and the cache write in one kernel, in place in the qkv output.
            v = v.view(-1, self.num_kv_heads, self.head_dim)
            slots = self.attn.cache_slots()
            norms = (self.q_norm.weight, self.k_norm.weight) if self.q_norm is not None else (None, None)
            eps = self.q_norm.eps if self.q_norm is not None else 0.0
            self.fused_prelude(q, k, v, *norms, eps, positions, self.rope.cos_sin_cache, *(slots or ()))
            return self.o_proj(self.attn(q, k, v, kv_written=slots is not None))
        if self.q_norm is not None:
            q = self.q_norm(q)
            k = self.k_norm(k)
        q, k = self.rope(positions, q, k)
        return self.o_proj(self.attn(q, k, v))


class MLP(nn.Module):
    def __init__(self, hidden: int, intermediate: int, bias: bool, kernels: LayerKernels):
        super().__init__()
        gemv = kernels.one_row_product
        self.gate_up_proj = FusedLinear(hidden, {0: intermediate, 1: intermediate}, bias, one_row_product=gemv)
        self.down_proj = RowParallelLinear(intermediate, hidden, bias, gemv)
        self.act = SiluAndMul(kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act(self.gate_up_proj(x)))


class DecoderLayer(nn.Module):
    def __init__(self, config, rope: RotaryEmbedding, biases: tuple[bool, bool], qk_norm: bool,
                 kernels: LayerKernels):
        super().__init__()
        self.self_attn = DecoderAttention(config, rope, biases, qk_norm, kernels)
        self.mlp = MLP(config.hidden_size, config.intermediate_size, getattr(config, "mlp_bias", False), kernels)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps, kernels)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps, kernels)

    def forward(self, positions, x, residual):
        if residual is None:
            residual = x
            x = self.input_layernorm(x)
        else:
            x, residual = self.input_layernorm(x, residual)
        x = self.self_attn(positions, x)
        x, residual = self.post_attention_layernorm(x, residual)
        return self.mlp(x), residual


class DecoderModel(nn.Module):
    def __init__(self, config, biases: tuple[bool, bool], qk_norm: bool, max_position: int,
                 kernels: LayerKernels):
        super().__init__()
        self.embed_tokens = VocabParallelEmbedding(config.vocab_size, config.hidden_size)
        rope = RotaryEmbedding(config, head_dim_of(config), max_position, kernels)
        self.layers = nn.ModuleList(DecoderLayer(config, rope, biases, qk_norm, kernels)
                                    for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps, kernels)

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        x = self.embed_tokens(input_ids)
        residual = None
        for layer in self.layers:
            x, residual = layer(positions, x, residual)
        x, _ = self.norm(x, residual)
        return x


class LlamaForCausalLM(nn.Module):
    qk_norm = False
    # Checkpoint tensor name part -> (fused module name part, which part of it).
    packed_modules = {"q_proj": ("qkv_proj", "q"), "k_proj": ("qkv_proj", "k"), "v_proj": ("qkv_proj", "v"),
                      "gate_proj": ("gate_up_proj", 0), "up_proj": ("gate_up_proj", 1)}

    def __init__(self, config, max_position: int, kernels: LayerKernels):
        """`kernels`: see ember/models/layers/kernels.py (chosen once, for the model's device)."""
        super().__init__()
        self.config = config
        self.model = DecoderModel(config, self.attention_biases(config), self.qk_norm, max_position, kernels)
        self.tied = bool(getattr(config, "tie_word_embeddings", False))
        self.lm_head = None if self.tied else VocabParallelEmbedding(config.vocab_size, config.hidden_size)

    @staticmethod
    def attention_biases(config) -> tuple[bool, bool]:
        """(bias on q/k/v, bias on o_proj)."""
        bias = bool(getattr(config, "attention_bias", False))
        return bias, bias

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, positions)

    def compute_logits(self, hidden: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor | None:
        """float32 logits on the driver rank (into `out` if given); None on the other
        tensor-parallel ranks."""
        return (self.model.embed_tokens if self.tied else self.lm_head).logits(hidden, out)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        params = dict(self.named_parameters())
        loaded = set()
        for name, tensor in weights:
            if "rotary_emb.inv_freq" in name or (self.tied and name.startswith("lm_head.")):
                continue
            shard = None
            for part, (fused, shard_id) in self.packed_modules.items():
                if f".{part}." in name:
                    name, shard = name.replace(f".{part}.", f".{fused}."), shard_id
                    break
            param = params.get(name)
            if param is None:
                raise KeyError(f"checkpoint tensor {name!r} has no place in {type(self).__name__}")
            loader = getattr(param, "weight_loader", Linear.load_full)
            loader(param, tensor.to(param.dtype), shard)
            loaded.add(name)
        return loaded
