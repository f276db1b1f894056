"""Incremental detokenization gives exactly the tokenizer's decode, even when characters span
several tokens."""
import pytest

from ember.engine.detokenizer import Detokenizer, find_stop_string, visible_text
from ember.engine.output_processor import SampleState
from ember.sampling_params import SamplingParams
from tests.tiny_models import smollm2_tokenizer

TEXTS = ["Hello world, this is Ember.", "混合中文和English文本 ok", "emoji 🎉🚀 and accents: café naïve",
         "def f(x):\n    return x ** 2  # code", "  leading spaces and\ttabs"]


@pytest.mark.parametrize("text", TEXTS)
def test_incremental_text_equals_full_decode(text):
    tok = smollm2_tokenizer()
    ids = tok.encode(text, add_special_tokens=False)
    seq = SampleState(0, SamplingParams(), tok.encode("Prompt:", add_special_tokens=False))
    detok = Detokenizer(tok)
    pieces = []
    for t in ids:
        seq.output_token_ids.append(t)
        pieces.append(detok.append(seq, t))
    assert "".join(pieces) == seq.detok.text == tok.decode(ids)
    assert all("\ufffd" not in p for p in pieces)


def test_stop_string_split_across_tokens_is_found_and_held_back():
    seq = SampleState(0, SamplingParams(stop=["STOP"]), [1])
    seq.detok.text = "abc ST"
    assert find_stop_string(seq, 3) is None
    assert visible_text(seq) == "abc"  # "ST" may be the start of "STOP"
    seq.detok.text = "abc STOP and more"
    assert find_stop_string(seq, 13) == "STOP"
    assert seq.detok.text == "abc "
