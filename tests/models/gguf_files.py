"""Small GGUF files written with the `gguf` package, the way llama.cpp's converter lays them
out: a tiny random Llama / Qwen2 / Qwen3 (dimensions multiples of 256, so every block
quantization fits), 1-D tensors in F32, Llama's q/k rows permuted, and a tokenizer: the first
TOKENS tokens of the SmolLM2 GGUF's BPE vocabulary with the merges that build them."""
from __future__ import annotations

import functools

import gguf
import numpy as np
import torch
from gguf import GGMLQuantizationType as Q

from tests.tiny_models import smollm2_gguf_path, tiny_config

TOKENS = 1024
ARCHES = {"llama": gguf.MODEL_ARCH.LLAMA, "qwen2": gguf.MODEL_ARCH.QWEN2, "qwen3": gguf.MODEL_ARCH.QWEN3}
# Qwen3: transformers reads no head size from a GGUF and takes Qwen3Config's default, 128.
HEAD_DIMS = {"llama": 64, "qwen2": 64, "qwen3": 128}

# gguf-py has no encoder for K-quants: their blocks get random codes and scales, with the
# block scale d (and the min scale dmin, centring the weights) chosen for weights of std ~0.1.
K_QUANT_SCALES = {Q.Q4_K: (4e-4, 7.5), Q.Q5_K: (2e-4, 15.5), Q.Q6_K: (7.5e-5, None)}


@functools.lru_cache(maxsize=None)
def tokenizer_fields() -> tuple[tuple[str, object, gguf.GGUFValueType, gguf.GGUFValueType | None], ...]:
    """(key, value, type, array item type) of the SmolLM2 tokenizer, cut to TOKENS tokens."""
    reader = gguf.GGUFReader(smollm2_gguf_path())
    tokens = reader.fields["tokenizer.ggml.tokens"].contents(slice(0, TOKENS))
    kept = set(tokens)
    merges = [m for m in reader.fields["tokenizer.ggml.merges"].contents(slice(0, TOKENS))
              if all(part in kept for part in m.split(" ")) and m.replace(" ", "") in kept]
    cut = {"tokenizer.ggml.tokens": tokens, "tokenizer.ggml.merges": merges,
           "tokenizer.ggml.token_type": reader.fields["tokenizer.ggml.token_type"].contents(slice(0, TOKENS))}
    fields = []
    for key, field in reader.fields.items():
        if key.startswith("tokenizer."):
            value = cut[key] if key in cut else field.contents()
            fields.append((key, value, field.types[0], field.types[-1] if len(field.types) > 1 else None))
    return tuple(fields)


def tiny_model_state(family: str, seed: int) -> tuple[object, dict[str, torch.Tensor]]:
    from transformers import AutoModelForCausalLM

    config = tiny_config(family, vocab_size=TOKENS, hidden_size=256, intermediate_size=512,
                         head_dim=HEAD_DIMS[family], max_position_embeddings=512,
                         tie_word_embeddings=family == "qwen3")
    torch.manual_seed(seed)
    state = AutoModelForCausalLM.from_config(config, dtype=torch.float32).state_dict()
    if config.tie_word_embeddings:
        del state["lm_head.weight"]  # a tied file has no output.weight
    return config, state


def encode(weight: np.ndarray, qtype: Q, rng: np.random.Generator) -> np.ndarray:
    if qtype not in K_QUANT_SCALES:
        return gguf.quants.quantize(weight, qtype)
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    rows = rng.integers(0, 256, (weight.shape[0], weight.shape[1] // block, size), dtype=np.uint8)
    d, dmin_ratio = K_QUANT_SCALES[qtype]
    if dmin_ratio is None:  # Q6_K: d last
        rows[..., -2:] = np.float16(d).reshape(1).view(np.uint8)
    else:  # Q4_K, Q5_K: d, dmin first
        rows[..., 0:2] = np.float16(d).reshape(1).view(np.uint8)
        rows[..., 2:4] = np.float16(d * dmin_ratio).reshape(1).view(np.uint8)
    return rows.reshape(weight.shape[0], -1)


def llama_permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's converter interleaves Llama's q/k rows for its rope; readers undo it."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, -1).swapaxes(1, 2).reshape(weight.shape)


def write_gguf(path: str, family: str, qtype: Q, seed: int = 0) -> str:
    config, state = tiny_model_state(family, seed)
    arch = ARCHES[family]
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[arch])
    writer.add_name(f"tiny-{family}")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    writer.add_rope_dimension_count(config.head_dim)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_vocab_size(config.vocab_size)
    for key, value, vtype, sub_type in tokenizer_fields():
        writer.add_key_value(key, value, vtype, sub_type)
    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    rng = np.random.default_rng(seed)
    for name, tensor in state.items():
        base, suffix = name.rsplit(".", 1)
        weight = tensor.numpy()
        if family == "llama" and base.endswith(("q_proj", "k_proj")):
            heads = config.num_attention_heads if base.endswith("q_proj") else config.num_key_value_heads
            weight = llama_permute(weight, heads)
        kind = qtype if weight.ndim == 2 else Q.F32
        writer.add_tensor(f"{names.get_name(base)}.{suffix}", encode(weight, kind, rng), raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
