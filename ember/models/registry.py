"""config.json "architectures" (or, failing that, "model_type") -> the class that implements it."""
from __future__ import annotations

from ember.models.llama import LlamaForCausalLM
from ember.models.qwen import QWenLMHeadModel
from ember.models.qwen2 import Qwen2ForCausalLM
from ember.models.qwen3 import Qwen3ForCausalLM

# One row per supported model: its config.json "model_type" and its class, whose name is the
# "architectures" entry.
MODELS = {"llama": LlamaForCausalLM, "qwen": QWenLMHeadModel, "qwen2": Qwen2ForCausalLM,
          "qwen3": Qwen3ForCausalLM}
_BY_ARCHITECTURE = {cls.__name__: cls for cls in MODELS.values()}


def model_class(config):
    for arch in getattr(config, "architectures", None) or []:
        if arch in _BY_ARCHITECTURE:
            return _BY_ARCHITECTURE[arch]
    model_type = getattr(config, "model_type", None)
    if model_type in MODELS:
        return MODELS[model_type]
    raise ValueError(f"Model architectures {getattr(config, 'architectures', None)} are not supported; "
                     f"Ember supports {', '.join(sorted(_BY_ARCHITECTURE))}.")
