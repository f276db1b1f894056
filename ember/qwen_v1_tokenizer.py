"""The tokenizer of Qwen v1 (Qwen-1.8B/7B/14B/72B and -Chat), which ships `qwen.tiktoken`
rather than a tokenizer.json: tiktoken BPE over byte-level ranks, Qwen's pre-tokenization
regex, and special tokens at fixed ids after the ranks, as Qwen's own `tokenization_qwen.py`
defines them (that file is never run). It offers the part of the Hugging Face tokenizer
interface that Ember uses.

Tokens are spelled as GPT-2 byte-level strings, as Qwen2's tokenizer.json spells the same
vocabulary: they are plain str (JSON-safe), and a character split across tokens is put back
together when convert_tokens_to_string joins their bytes."""
from __future__ import annotations

import base64
import json
import os
import unicodedata

import tiktoken
from transformers import BatchEncoding
from transformers.convert_slow_tokenizer import bytes_to_unicode
from transformers.utils.chat_template_utils import render_jinja_template

VOCAB_FILE = "qwen.tiktoken"
PAT_STR = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
           r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_START_ID = 151643
SPECIAL_TOKENS = {token: SPECIAL_START_ID + i for i, token in
                  enumerate((ENDOFTEXT, IM_START, IM_END, *(f"<|extra_{n}|>" for n in range(205))))}

# ChatML as Qwen's chat() builds it: a default system message when the conversation has none.
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if loop.first and message['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_BYTE_TO_CHAR = bytes_to_unicode()
_CHAR_TO_BYTE = {c: b for b, c in _BYTE_TO_CHAR.items()}


def load_ranks(path: str) -> dict[bytes, int]:
    """`qwen.tiktoken`: one "<base64 token> <rank>" per line."""
    with open(path, "rb") as f:
        return {base64.b64decode(token): int(rank)
                for token, rank in (line.split() for line in f.read().splitlines() if line)}


class QWenTokenizer:
    def __init__(self, vocab_file: str, chat_template: str | None = None):
        ranks = load_ranks(vocab_file)
        self._encoding = tiktoken.Encoding("qwen", pat_str=PAT_STR, mergeable_ranks=ranks,
                                           special_tokens=SPECIAL_TOKENS)
        tokens = {rank: "".join(_BYTE_TO_CHAR[b] for b in token) for token, rank in ranks.items()}
        tokens.update({i: token for token, i in SPECIAL_TOKENS.items()})
        self._id_to_token = tokens
        self._token_to_id = {token: i for i, token in tokens.items()}
        self.chat_template = chat_template or CHATML_TEMPLATE
        self.eos_token, self.eos_token_id = ENDOFTEXT, SPECIAL_TOKENS[ENDOFTEXT]
        self.all_special_tokens = list(SPECIAL_TOKENS)
        self.all_special_ids = list(SPECIAL_TOKENS.values())

    @classmethod
    def from_directory(cls, directory: str) -> "QWenTokenizer":
        """A checkpoint directory; a chat template in its tokenizer_config.json wins over ChatML."""
        config_file = os.path.join(directory, "tokenizer_config.json")
        template = None
        if os.path.isfile(config_file):
            with open(config_file, encoding="utf-8") as f:
                template = json.load(f).get("chat_template")
        return cls(os.path.join(directory, VOCAB_FILE), template)

    def __len__(self) -> int:
        return self._encoding.n_vocab

    @property
    def vocab_size(self) -> int:
        return self._encoding.n_vocab

    def get_vocab(self) -> dict[str, int]:
        return dict(self._token_to_id)

    def encode(self, text: str, add_special_tokens: bool = True, allowed_special="all") -> list[int]:
        """Qwen v1 adds no BOS, so add_special_tokens changes nothing. Special-token text in the
        input becomes the special token, as in the original (allowed_special="all"); pass
        allowed_special=set() to encode it as plain text."""
        return self._encoding.encode(unicodedata.normalize("NFC", text), allowed_special=allowed_special,
                                     disallowed_special=())

    def __call__(self, text: str, add_special_tokens: bool = True) -> BatchEncoding:
        ids = self.encode(text, add_special_tokens)
        return BatchEncoding({"input_ids": ids, "attention_mask": [1] * len(ids)})

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        # Ids past the vocabulary (the padding rows of Qwen v1's 151,936-row embedding, which a
        # model can still sample) read as nothing, as they do with Hugging Face's tokenizers.
        ids = [ids] if isinstance(ids, int) else list(ids)
        ids = [i for i in ids if i in self._id_to_token and not (skip_special_tokens and i >= SPECIAL_START_ID)]
        return self._encoding.decode(ids, errors="replace")

    def convert_ids_to_tokens(self, ids, skip_special_tokens: bool = False):
        """None for an id past the vocabulary, as Hugging Face's fast tokenizers give."""
        if isinstance(ids, int):
            return self._id_to_token.get(ids)
        return [self._id_to_token.get(i) for i in ids if not (skip_special_tokens and i >= SPECIAL_START_ID)]

    def convert_tokens_to_ids(self, tokens):
        if isinstance(tokens, str):
            return self._token_to_id[tokens]
        return [self._token_to_id[t] for t in tokens]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Special tokens read as their text; the bytes of the others are joined first, then
        decoded, so an incomplete character shows as U+FFFD only at the very end."""
        text, pending = [], bytearray()
        for token in tokens:
            if token in SPECIAL_TOKENS:
                text.append(pending.decode("utf-8", errors="replace"))
                pending.clear()
                text.append(token)
            else:
                pending.extend(_CHAR_TO_BYTE[c] for c in token)
        text.append(pending.decode("utf-8", errors="replace"))
        return "".join(text)

    def apply_chat_template(self, conversation: list[dict], chat_template: str | None = None,
                            tokenize: bool = False, add_generation_prompt: bool = False,
                            continue_final_message: bool = False, tools: list[dict] | None = None,
                            **kwargs):
        """Rendered by transformers' renderer, as for any Hugging Face tokenizer: Jinja's
        ImmutableSandboxedEnvironment, the same filters and globals."""
        rendered, _ = render_jinja_template(
            [conversation], tools=tools, chat_template=chat_template or self.chat_template,
            add_generation_prompt=add_generation_prompt, continue_final_message=continue_final_message,
            eos_token=self.eos_token, **kwargs)
        return self.encode(rendered[0], add_special_tokens=False) if tokenize else rendered[0]
