"""Qwen2 and Qwen2.5: the Llama decoder with a bias on the q, k and v projections."""
from ember.models.llama import LlamaForCausalLM


class Qwen2ForCausalLM(LlamaForCausalLM):
    @staticmethod
    def attention_biases(config) -> tuple[bool, bool]:
        return True, False
