"""Qwen v1 (`QWenLMHeadModel`: Qwen-1.8B/7B/14B/72B and their -Chat), implemented natively: the
checkpoint's own modeling code is never run. Its architecture is the Llama decoder under other
names: `c_attn` is q, k and v fused (with bias), `w1`/`w2` are the SwiGLU's up and gate
(SiLU(w2 x) * w1 x -> c_proj), `ln_1`/`ln_2`/`ln_f` are RMSNorms; its hyperparameters have
keys of their own (`kv_channels`, `layer_norm_epsilon`, `rotary_emb_base`, `no_bias`, ...).

Qwen's code also has dynamic NTK and logn attention scaling, which act only beyond
`seq_length`; Ember, like vLLM, caps the context at seq_length, where both are inactive."""
from __future__ import annotations

import copy
from typing import Iterable

import torch

from ember.models.layers.kernels import LayerKernels
from ember.models.llama import LlamaForCausalLM

# Checkpoint name part -> Llama name part; w2 is the gate (under the SiLU), w1 the up projection.
_RENAMES = (("transformer.wte.", "model.embed_tokens."), ("transformer.ln_f.", "model.norm."),
            ("transformer.h.", "model.layers."), (".ln_1.", ".input_layernorm."),
            (".ln_2.", ".post_attention_layernorm."), (".attn.c_attn.", ".self_attn.qkv_proj."),
            (".attn.c_proj.", ".self_attn.o_proj."), (".mlp.w2.", ".mlp.gate_proj."),
            (".mlp.w1.", ".mlp.up_proj."), (".mlp.c_proj.", ".mlp.down_proj."))


def llama_view(config):
    """A copy of a Qwen v1 config under the names the Llama decoder reads."""
    view = copy.copy(config)
    view.rms_norm_eps = config.layer_norm_epsilon
    view.num_key_value_heads = config.num_attention_heads
    view.head_dim = config.kv_channels
    # Qwen counts both SwiGLU halves in intermediate_size.
    view.intermediate_size = config.intermediate_size // 2
    view.mlp_bias = not config.no_bias
    view.partial_rotary_factor = getattr(config, "rotary_pct", 1.0)
    view.tie_word_embeddings = False
    return view


class QWenLMHeadModel(LlamaForCausalLM):
    def __init__(self, config, max_position: int, kernels: LayerKernels):
        super().__init__(llama_view(config), max_position, kernels)

    @staticmethod
    def attention_biases(config) -> tuple[bool, bool]:
        return True, not config.no_bias

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        return super().load_weights(self._as_llama(weights))

    def _as_llama(self, weights):
        """The checkpoint's tensors under Llama's names. c_attn goes whole to the fused qkv_proj,
        which splits it: where its output dimension lies depends on the tensor (a GPTQ
        checkpoint's qweight has it second)."""
        for name, tensor in weights:
            for theirs, ours in _RENAMES:
                name = name.replace(theirs, ours)
            yield name, tensor
