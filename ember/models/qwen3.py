"""Qwen3: the Llama decoder with RMSNorm over each head of q and k before rope, and an
explicit head_dim."""
from ember.models.llama import LlamaForCausalLM


class Qwen3ForCausalLM(LlamaForCausalLM):
    qk_norm = True
