"""The tokenizer of a GGUF file, built from Ember's one parse of it, is transformers' own
(AutoTokenizer with gguf_file=) token for token, without the `gguf` package's slow reader."""
from __future__ import annotations

import os

import pytest

from ember.gguf_tokenizer import gguf_converter, load_gguf_tokenizer
from ember.tokenizer import load_tokenizer
from tests.tiny_models import smollm2_gguf_path

pytestmark = pytest.mark.skipif(gguf_converter() is None,
                                reason="this transformers builds GGUF tokenizers only inside AutoTokenizer")

TEXTS = ["Hello world", "  leading spaces\n\ttabs <|im_start|>user\nhi<|im_end|>\n",
         "ünïcödé 日本語 🙂 1234567 ", "<|endoftext|>x<think>y</think>"]


@pytest.fixture(scope="module")
def transformers_tokenizer():
    from transformers import AutoTokenizer

    path = smollm2_gguf_path()
    return AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))


def test_gguf_tokenizer_equals_autotokenizer(transformers_tokenizer):
    ours = load_tokenizer(smollm2_gguf_path())
    for text in TEXTS:
        ids = ours(text).input_ids
        assert ids == transformers_tokenizer(text).input_ids, text
        assert ours.decode(ids) == transformers_tokenizer.decode(ids)
        assert ours.decode(ids, skip_special_tokens=True) == transformers_tokenizer.decode(ids, skip_special_tokens=True)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Write a short story."}]
    assert ours.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == \
        transformers_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    for attribute in ("bos_token", "eos_token", "unk_token", "pad_token", "all_special_ids", "add_bos_token",
                      "add_eos_token"):
        assert getattr(ours, attribute) == getattr(transformers_tokenizer, attribute), attribute
    assert ours.get_vocab() == transformers_tokenizer.get_vocab()


def test_gguf_tokenizer_does_not_reparse_with_the_gguf_package(monkeypatch):
    import gguf

    def refuse(*args, **kwargs):
        raise AssertionError("the gguf package's reader parsed the file again")

    monkeypatch.setattr(gguf.GGUFReader, "__init__", refuse)
    monkeypatch.setattr(gguf.gguf_reader.GGUFReader, "__init__", refuse)
    assert load_gguf_tokenizer(smollm2_gguf_path())("Hello").input_ids
