"""config.json "architectures" -> the class that implements it."""
from __future__ import annotations

from ember.models.llama import LlamaForCausalLM
from ember.models.qwen import QWenLMHeadModel
from ember.models.qwen2 import Qwen2ForCausalLM
from ember.models.qwen3 import Qwen3ForCausalLM

MODELS = {
    "LlamaForCausalLM": LlamaForCausalLM,
    "QWenLMHeadModel": QWenLMHeadModel,
    "Qwen2ForCausalLM": Qwen2ForCausalLM,
    "Qwen3ForCausalLM": Qwen3ForCausalLM,
}


def model_class(config):
    for arch in getattr(config, "architectures", None) or []:
        if arch in MODELS:
            return MODELS[arch]
    model_type = getattr(config, "model_type", None)
    by_type = {"llama": LlamaForCausalLM, "qwen": QWenLMHeadModel, "qwen2": Qwen2ForCausalLM,
               "qwen3": Qwen3ForCausalLM}
    if model_type in by_type:
        return by_type[model_type]
    raise ValueError(f"Model architectures {getattr(config, 'architectures', None)} are not supported; "
                     f"Ember supports {', '.join(sorted(MODELS))}.")
