"""The requests must be exactly those of ../shared/bench/hf_baseline.py (BENCHMARKS.md)."""
import random

import pytest

from ember.entrypoints.bench.workloads import (WORKLOADS, check_output_lengths, random_requests, sharegpt_requests,
                                               workload_label, workload_requests)


def documented_seed():
    rng = random.Random(2024)
    return [([rng.randrange(1000, 150000) for _ in range(64)], 128) for _ in range(25)]


def documented_mixed(n):
    rng, out = random.Random(0), []
    for _ in range(n):
        il, ol = rng.randint(100, 1024), rng.randint(100, 1024)
        out.append(([rng.randrange(1000, 150000) for _ in range(il)], ol))
    return out


def test_totals_of_benchmarks_md():
    seed, rand7b, nano = (workload_requests(n) for n in ("seed", "rand7b", "nano"))
    assert len(seed) == 25 and all(len(p) == 64 and o == 128 for p, o in seed)
    assert len(rand7b) == 128 and sum(o for _, o in rand7b) == 69_757
    assert len(nano) == 256 and sum(o for _, o in nano) == 145_930


def test_requests_match_the_documented_algorithm():
    assert workload_requests("seed") == documented_seed()
    assert workload_requests("rand7b")[:5] == documented_mixed(5)
    assert workload_requests("nano")[:128] == workload_requests("rand7b")
    assert workload_requests("nano", 3) == documented_mixed(3)
    assert {w.shape for w in WORKLOADS.values()} == {"qwen2.5-7b", "qwen3-0.6b"}


def test_random_requests_are_the_seed_case_on_a_qwen_vocab_and_stay_in_small_vocabs():
    # The seeds' command (--input-len 64 --output-len 128 --num-prompts 25 --seed 2024) on the
    # 7B shape is the `seed` workload.
    assert random_requests(25, 64, 128, seed=2024, vocab_size=152064) == documented_seed()
    small = random_requests(4, 30, 5, seed=1, vocab_size=50)
    assert all(len(p) == 30 and o == 5 and all(0 <= t < 50 for t in p) for p, o in small)
    assert small != random_requests(4, 30, 5, seed=2, vocab_size=50)


def test_workload_refuses_a_small_vocabulary():
    with pytest.raises(ValueError, match="vocabulary has 1000"):
        workload_requests("seed", vocab_size=1000)


def test_workload_ids_modulo_a_small_vocabulary_keep_the_lengths():
    folded = workload_requests("rand7b", 4, vocab_size=49152, ids_modulo_vocab=True)
    assert folded == [([t % 49152 for t in p], o) for p, o in documented_mixed(4)]
    assert workload_label("rand7b", 49152) == "rand7b%49152" and workload_label("rand7b") == "rand7b"
    # A Qwen-sized vocabulary needs no folding: the flag changes nothing.
    assert workload_requests("rand7b", 4, vocab_size=152064, ids_modulo_vocab=True) == documented_mixed(4)


def test_check_output_lengths():
    check_output_lengths([([1], 3), ([2], 4)], [3, 4])
    with pytest.raises(RuntimeError, match="1 of 2"):
        check_output_lengths([([1], 3), ([2], 4)], [3, 2])


class WordTokenizer:
    """One token per word: lengths are easy to count by eye."""

    def __call__(self, text):
        return type("Encoding", (), {"input_ids": [len(w) for w in text.split()]})()


def test_sharegpt_takes_the_first_human_gpt_exchange_and_filters_like_vllm(tmp_path):
    words = lambda n: " ".join(["w"] * n)  # noqa: E731
    data = [
        {"conversations": [{"from": "system", "value": words(50)}, {"from": "human", "value": words(5)},
                           {"from": "gpt", "value": words(7)}, {"from": "human", "value": words(9)}]},
        {"conversations": [{"from": "human", "value": words(3)}, {"from": "gpt", "value": words(10)}]},  # short
        {"conversations": [{"from": "human", "value": words(1100)}, {"from": "gpt", "value": words(10)}]},  # long
        {"conversations": [{"from": "human", "value": words(6)}]},  # no reply
        {"conversations": [{"from": "human", "value": words(8)}, {"from": "gpt", "value": words(4)}]},
    ]
    path = tmp_path / "sharegpt.json"
    path.write_text(__import__("json").dumps(data))
    got = sharegpt_requests(str(path), 10, WordTokenizer(), None, seed=0)
    assert sorted((len(p), o) for p, o in got) == [(5, 7), (8, 4)]
    assert [o for _, o in sharegpt_requests(str(path), 1, WordTokenizer(), 16, seed=0)] == [16]
    with pytest.raises(ValueError, match="at least 4"):
        sharegpt_requests(str(path), 1, WordTokenizer(), 3, seed=0)
