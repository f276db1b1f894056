"""A GGUF checkpoint (llama.cpp's format) as Ember loads it: the Hugging Face config built from
the file's metadata with transformers' own key table, and the tensors under Hugging Face names.
The file is parsed once (ember.models.gguf_file) for the config, the tokenizer and the weights.

The weights either dequantize to the model's dtype (the fp32 path, equal to transformers'
dequantized model) or, for the bf16 CPU path, stay in their blocks: every linear layer gets a
GGUFCPULinearMethod and its parts as stored, never a dense float copy of a 4-bit matrix."""
from __future__ import annotations

import re

import torch
from torch import nn

from ember.models.gguf_file import read_gguf
from ember.models.layers.linear import Linear
from ember.quantization.gguf_blocks import dequantize
from ember.quantization.gguf_cpu import GGUFCPULinearMethod, SmallBatchInt8Head

_LAYER_PARTS = {
    "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm",
    "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
}
_TOP = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_BLOCK_NAME = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)$")


def hf_name(gguf_name: str) -> str:
    match = _BLOCK_NAME.match(gguf_name)
    if match:
        layer, part, kind = match.groups()
        if part in _LAYER_PARTS:
            return f"model.layers.{layer}.{_LAYER_PARTS[part]}.{kind}"
    else:
        base, _, kind = gguf_name.rpartition(".")
        if base in _TOP:
            return f"{_TOP[base]}.{kind}"
    raise KeyError(f"GGUF tensor {gguf_name!r} has no place in a Llama/Qwen model")


def gguf_config_dict(path: str) -> dict:
    """What transformers' GGUF loader makes of the file's metadata, for llama-family files."""
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    gguf = read_gguf(path)
    arch = gguf.architecture
    config = {"model_type": arch, "tie_word_embeddings": "output.weight" not in gguf.tensors}
    for key, value in gguf.metadata.items():
        prefix, _, rest = key.partition(".")
        renamed = GGUF_CONFIG_MAPPING.get(prefix, {}).get(rest)
        if renamed is not None and renamed != -1:
            config[renamed] = value
    if "vocab_size" not in config and "tokenizer.ggml.tokens" in gguf.metadata:
        config["vocab_size"] = len(gguf.metadata["tokenizer.ggml.tokens"])
    return config


def _unpermute_rows(rows: torch.Tensor, num_heads: int) -> torch.Tensor:
    """llama.cpp interleaves each head's rotary halves in q and k (for the llama architecture);
    transformers' GGUF loader undoes it the same way. Rows only, so blocks move whole."""
    return rows.reshape(num_heads, -1, 2, *rows.shape[1:]).transpose(1, 2).reshape(rows.shape)


def load_gguf_weights(model: nn.Module, path: str, keep_blocks: bool) -> set[str]:
    """Fill `model` from the file; the names of the parameters filled. `keep_blocks`: linear
    layers keep GGUF blocks (their quant_method is set here, their placeholder weight dropped)."""
    gguf = read_gguf(path)
    config = model.config
    heads = {"attn_q": config.num_attention_heads,
             "attn_k": getattr(config, "num_key_value_heads", None) or config.num_attention_heads}
    modules = dict(model.named_modules())
    dense, kept = [], set()
    for tensor in gguf.tensors.values():
        name = hf_name(tensor.name)
        raw = tensor.raw()
        part = tensor.name.split(".")[2] if tensor.name.startswith("blk.") else ""
        if gguf.architecture == "llama" and part in heads:
            raw = _unpermute_rows(raw, heads[part])
        module_name, shard = _linear_of(model, name)
        if keep_blocks and isinstance(modules.get(module_name), Linear) and name.endswith(".weight"):
            layer = modules[module_name]
            if layer.quant_method is None:
                del layer.weight
                layer.quant_method = GGUFCPULinearMethod()
            layer.quant_method.load_part(shard, tensor.ggml_type, raw, tensor.shape)
            kept.add(f"{module_name}.weight")
            continue
        dense.append((name, dequantize(raw, tensor.ggml_type, tensor.shape)))
    loaded = model.load_weights(dense)
    if keep_blocks:
        for layer in model.modules():
            if isinstance(layer, Linear) and isinstance(layer.quant_method, GGUFCPULinearMethod):
                layer.quant_method.process_weights_after_loading(layer)
        head = model.model.embed_tokens if model.lm_head is None else model.lm_head
        if SmallBatchInt8Head.available(head.weight):
            head.head_method = SmallBatchInt8Head(head.weight)
    return loaded | kept


def _linear_of(model: nn.Module, name: str) -> tuple[str, object]:
    """(the module a checkpoint tensor loads into, which part of it)."""
    module_name = name.rpartition(".")[0]
    for part, (fused, shard) in getattr(model, "packed_modules", {}).items():
        if module_name.endswith(f".{part}"):
            return module_name[:-len(part)] + fused, shard
    return module_name, None
