"""The requests a benchmark runs: the fixed workloads of BENCHMARKS.md, random prompts of a
given length, or a ShareGPT file; and the built-in model shapes that need no download.

A request is `(prompt_token_ids, output_len)`. Prompts are token ids for every source, so
both backends see identical inputs and no tokenizer is needed with random weights."""
from __future__ import annotations

import atexit
import json
import random
import shutil
import tempfile
from dataclasses import dataclass
from typing import Callable

Request = tuple[list[int], int]

# BENCHMARKS.md draws ids from [1000, 150000): ordinary tokens of both Qwen vocabularies
# (no byte-level or special tokens). A smaller vocabulary (tests, other families) uses all of it.
_ID_LOW, _ID_HIGH = 1000, 150000


def id_range(vocab_size: int) -> tuple[int, int]:
    return (_ID_LOW, _ID_HIGH) if vocab_size >= _ID_HIGH else (0, vocab_size)


def random_requests(num: int, input_len: int, output_len: int, seed: int, vocab_size: int) -> list[Request]:
    """`num` prompts of `input_len` random ids, all with `output_len`. With a Qwen-sized
    vocabulary and `--seed 2024` this is the `seed` workload (25 x 64/128)."""
    rng, (lo, hi) = random.Random(seed), id_range(vocab_size)
    return [([rng.randrange(lo, hi) for _ in range(input_len)], output_len) for _ in range(num)]


def mixed_requests(num: int, seed: int = 0) -> list[Request]:
    """Per request: input length, output length, each uniform in 100..1024, then the ids (the
    order hf_baseline.py draws them in; a prefix of a longer list is the shorter list)."""
    rng, out = random.Random(seed), []
    for _ in range(num):
        il, ol = rng.randint(100, 1024), rng.randint(100, 1024)
        out.append(([rng.randrange(_ID_LOW, _ID_HIGH) for _ in range(il)], ol))
    return out


@dataclass(frozen=True)
class Workload:
    shape: str              # the built-in model shape it is measured on
    num_requests: int
    hf_max_batch_size: int  # the static batch of the transformers baseline in BENCHMARKS.md
    make: Callable[[int], list[Request]]


WORKLOADS = {
    "seed": Workload("qwen2.5-7b", 25, 25, lambda n: random_requests(n, 64, 128, 2024, _ID_HIGH)),
    "rand7b": Workload("qwen2.5-7b", 128, 64, mixed_requests),
    "nano": Workload("qwen3-0.6b", 256, 128, mixed_requests),
}


def workload_requests(name: str, num: int | None = None, vocab_size: int = _ID_HIGH,
                      ids_modulo_vocab: bool = False) -> list[Request]:
    """The requests of workload `name`; `num` takes the first `num` of them. `ids_modulo_vocab`
    folds each id into a smaller vocabulary (id % vocab_size): the same lengths, other ids, for a
    model whose real tokenizer is smaller than Qwen's (a server needs one)."""
    if vocab_size < _ID_HIGH and not ids_modulo_vocab:
        raise ValueError(f"workload {name!r} draws token ids up to {_ID_HIGH - 1}, but the model's "
                         f"vocabulary has {vocab_size}: use a Qwen-sized model, --ids-modulo-vocab, "
                         f"or --input-len.")
    workload = WORKLOADS[name]
    requests = workload.make(workload.num_requests if num is None else num)
    if vocab_size < _ID_HIGH:
        requests = [([t % vocab_size for t in ids], output_len) for ids, output_len in requests]
    return requests


def workload_label(name: str, vocab_size: int = _ID_HIGH) -> str:
    """`rand7b`, or `rand7b%49152` when its ids were folded into a smaller vocabulary."""
    return name if vocab_size >= _ID_HIGH else f"{name}%{vocab_size}"


def check_output_lengths(requests: list[Request], produced: list[int]) -> None:
    """A run that stopped early would report a false speed: every request must produce exactly
    its output length."""
    bad = [(i, want, got) for i, ((_, want), got) in enumerate(zip(requests, produced)) if want != got]
    if bad or len(produced) != len(requests):
        raise RuntimeError(f"{len(bad)} of {len(requests)} requests did not produce their output length "
                           f"(request, wanted, got): {bad[:5]}")


def sharegpt_requests(path: str, num: int, tokenizer, fixed_output_len: int | None, seed: int) -> list[Request]:
    """vLLM's sample_requests: shuffle the conversations, take the first human turn as the
    prompt and the token count of the gpt reply as the output length (or `fixed_output_len`),
    drop pairs under 4 tokens or longer than 1024 in / 2048 in all."""
    if fixed_output_len is not None and fixed_output_len < 4:
        raise ValueError("--output-len must be at least 4 with --dataset.")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    pairs = [pair for entry in data if (pair := _first_exchange(entry.get("conversations", [])))]
    random.Random(seed).shuffle(pairs)
    out: list[Request] = []
    for prompt, reply in pairs:
        if len(out) == num:
            break
        prompt_ids = tokenizer(prompt).input_ids
        output_len = len(tokenizer(reply).input_ids) if fixed_output_len is None else fixed_output_len
        if len(prompt_ids) < 4 or output_len < 4 or len(prompt_ids) > 1024 or len(prompt_ids) + output_len > 2048:
            continue
        out.append((prompt_ids, output_len))
    if not out:
        raise ValueError(f"{path}: no usable human/gpt exchange (4..1024 prompt tokens, 2048 in all).")
    return out


def _first_exchange(turns: list[dict]) -> tuple[str, str] | None:
    for asked, answered in zip(turns, turns[1:]):
        if asked.get("from") == "human" and answered.get("from") == "gpt":
            return asked["value"], answered["value"]
    return None


def _qwen2_5_7b():
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                       num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768,
                       rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False, torch_dtype="bfloat16")


def _qwen3_0_6b():
    from transformers import Qwen3Config

    return Qwen3Config(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                       num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
                       rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, torch_dtype="bfloat16")


# The configs exactly as hf_baseline.py builds them.
SHAPES = {"qwen2.5-7b": _qwen2_5_7b, "qwen3-0.6b": _qwen3_0_6b}


def shape_dir(name: str) -> str:
    """A temporary directory holding only the config.json of built-in shape `name` (removed at
    exit): the engine and transformers both read a model from a directory."""
    directory = tempfile.mkdtemp(prefix=f"ember-bench-{name}-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    SHAPES[name]().save_pretrained(directory)
    return directory
