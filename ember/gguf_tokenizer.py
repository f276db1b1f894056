"""The tokenizer inside a GGUF file, built from Ember's own parse of it (ember.models.gguf_file,
which the config and the weights read too) by transformers' GGUF tokenizer converter.

`AutoTokenizer.from_pretrained(dir, gguf_file=...)` gives the same tokenizer but first builds a
config from the file with the `gguf` package's per-element reader for architectures its fast
reader does not cover (llama among them): 2.5-4.9 s for SmolLM2's 49k-token vocabulary on a
2-core EPYC, in the server's API process while the engine core loads beside it. From the parse
it takes ~0.3 s."""
from __future__ import annotations

import os

# The file's special-token ids (llama.cpp's keys) -> the tokenizer's special-token arguments.
_SPECIAL_TOKEN_KEYS = {"bos_token": "bos_token_id", "eos_token": "eos_token_id",
                       "unk_token": "unknown_token_id", "pad_token": "padding_token_id"}


def gguf_converter():
    """transformers' (key table, converter) for GGUF tokenizers, or None where this transformers
    has no standalone converter (older releases build it only inside AutoTokenizer)."""
    try:
        from transformers.integrations.gguf.gguf_tokenizer_mapping import (GGUF_TOKENIZER_MAPPING,
                                                                           convert_gguf_tokenizer)
    except ImportError:
        return None
    return GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer


def load_gguf_tokenizer(path: str):
    """A fast tokenizer equal to `AutoTokenizer.from_pretrained(dir, gguf_file=name)`'s."""
    converter = gguf_converter()
    if converter is None:
        from transformers import AutoTokenizer

        directory, name = os.path.split(path)
        return AutoTokenizer.from_pretrained(directory, gguf_file=name, trust_remote_code=False)
    from transformers import PreTrainedTokenizerFast

    from ember.models.gguf_file import read_gguf

    key_table, convert = converter
    metadata = read_gguf(path).metadata
    groups = {group: {name: metadata[f"tokenizer.{key}"] for key, name in renames.items()
                      if f"tokenizer.{key}" in metadata}
              for group, renames in key_table.items()}
    vocabulary, init_kwargs = groups["tokenizer"], groups["tokenizer_config"]
    if vocabulary.get("tokenizer_type") == "llama":
        # transformers' rule: a sentencepiece vocabulary without the flag adds BOS, as llama.cpp does.
        init_kwargs.setdefault("add_bos_token", True)
    for name, key in _SPECIAL_TOKEN_KEYS.items():
        token_id = metadata.get(f"tokenizer.ggml.{key}")
        init_kwargs[name] = vocabulary["tokens"][token_id] if token_id is not None else None
    backend, extra = convert(metadata["general.architecture"], vocabulary)
    return PreTrainedTokenizerFast(tokenizer_object=backend, name_or_path=os.path.dirname(path),
                                   **init_kwargs, **extra)
