"""A checkpoint's config.json and generation_config.json, read without running its code."""
from __future__ import annotations

import json
import os
from typing import Any

from transformers import AutoConfig, PretrainedConfig


def split_gguf(path: str) -> tuple[str, str | None]:
    """(directory, gguf file name or None) for a model path."""
    if path.endswith(".gguf") and os.path.isfile(path):
        return os.path.dirname(path), os.path.basename(path)
    return path, None


def load_hf_config(path: str, rope_scaling: dict | None = None) -> PretrainedConfig:
    directory, gguf_file = split_gguf(path)
    if gguf_file is not None:
        from ember.models.gguf_loading import gguf_config_dict

        values = gguf_config_dict(path)
        config = AutoConfig.for_model(values.pop("model_type"), **values)
    else:
        with open(os.path.join(directory, "config.json")) as f:
            raw = json.load(f)
        try:
            # trust_remote_code stays off: a checkpoint's own code never runs.
            config = AutoConfig.from_pretrained(directory, trust_remote_code=False)
        except (ValueError, KeyError):
            config = PretrainedConfig.from_dict(raw)
    if rope_scaling is not None:
        set_rope_scaling(config, rope_scaling)
    return config


def set_rope_scaling(config: PretrainedConfig, scaling: dict) -> None:
    """Install a rope scaling dict where this transformers version reads it: 5.x in
    `rope_parameters` (theta included), 4.x in `rope_scaling`."""
    if isinstance(getattr(type(config), "rope_scaling", None), property):  # 5.x: an alias
        config.rope_parameters = {**scaling, "rope_theta": rope_settings(config)[0]}
    else:
        config.rope_scaling = dict(scaling)


def rope_settings(config: PretrainedConfig) -> tuple[float, dict | None]:
    """(rope theta, scaling dict or None) across transformers versions: 5.x keeps both in
    `rope_parameters`, 4.x in `rope_theta` and `rope_scaling`; Qwen v1 calls theta
    `rotary_emb_base`."""
    params = getattr(config, "rope_parameters", None) or {}
    theta = params.get("rope_theta", getattr(config, "rope_theta", None))
    if theta is None:
        theta = getattr(config, "rotary_emb_base", 10000.0)
    scaling = {k: v for k, v in params.items() if k != "rope_theta"} or getattr(config, "rope_scaling", None)
    if scaling and scaling.get("rope_type", scaling.get("type")) in (None, "default"):
        scaling = None
    return float(theta), scaling


def config_dtype(config: PretrainedConfig):
    return getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)


def max_context_of(config: PretrainedConfig) -> int:
    """The longest context the model supports: max_position_embeddings, or Qwen v1's
    seq_length when smaller (as vLLM takes it: Qwen-14B trained on 2,048 tokens and reaches
    8,192 only through the dynamic NTK and logn attention of its own code), times a static
    rope scaling factor when one is configured."""
    lengths = [n for n in (getattr(config, "max_position_embeddings", None),
                           getattr(config, "seq_length", None)) if n]
    base = min(lengths) if lengths else 2048
    scaling = rope_settings(config)[1] or {}
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind in ("yarn", "linear", "dynamic") and "factor" in scaling:
        original = scaling.get("original_max_position_embeddings", base)
        return max(base, int(original * scaling["factor"]))
    return int(base)


def load_generation_config(path: str) -> dict[str, Any]:
    directory, gguf_file = split_gguf(path)
    file = os.path.join(directory, "generation_config.json")
    if gguf_file is not None or not os.path.isfile(file):
        return {}
    with open(file) as f:
        config = json.load(f)
    stop_ids = _qwen_v1_stop_ids(config)
    if stop_ids:
        config["eos_token_id"] = stop_ids
    return config


# Qwen v1's ChatML markers <|im_end|> and <|im_start|>: fixed ids in its tokenizer
# (ember/qwen_v1_tokenizer.py), where its own chat() stops besides <|endoftext|>.
_QWEN_V1_CHATML_STOP_IDS = (151645, 151644)


def _qwen_v1_stop_ids(config: dict) -> list[int]:
    """Qwen v1 keeps stop tokens outside eos_token_id: a base model lists `stop_words_ids`, a
    chat model says `chat_format: "chatml"`. Their single-token stop words join the eos ids,
    so generation ends where Qwen's own code ends it; [] for any other checkpoint."""
    if "chat_format" not in config and "stop_words_ids" not in config:
        return []
    eos = config.get("eos_token_id")
    ids = [eos] if isinstance(eos, int) else list(eos or [])
    ids += [words[0] for words in config.get("stop_words_ids") or [] if len(words) == 1]
    if config.get("chat_format") == "chatml":
        ids += _QWEN_V1_CHATML_STOP_IDS
    return list(dict.fromkeys(ids))
