"""`ember bench throughput` end to end on CPU, both backends, on random weights of a tiny config."""
import argparse
import json
import re
import subprocess
import sys

import pytest

from ember.entrypoints.bench import cli
from ember.entrypoints.bench.hf_backend import HFBackend

LINE = re.compile(r"^Throughput: (\d+\.\d{2}) requests/s, (\d+\.\d{2}) total tokens/s, "
                  r"(\d+\.\d{2}) output tokens/s$", re.M)
SMALL = ["--random-weights", "--input-len", "12", "--output-len", "5", "--num-prompts", "5", "--seed", "3"]


def run(capsys, tmp_path, *argv) -> tuple[dict, str]:
    out_json = tmp_path / "result.json"
    cli.main(["throughput", *argv, "--output-json", str(out_json)])
    printed = capsys.readouterr().out
    return json.loads(out_json.read_text()), printed


def check(result: dict, printed: str, backend: str, n: int, tokens_in: int, tokens_out: int) -> None:
    match = LINE.search(printed)
    assert match, printed
    assert result["backend"] == backend and result["num_requests"] == n
    assert result["output_tokens"] == tokens_out and result["total_num_tokens"] == tokens_in + tokens_out
    assert result["elapsed_time"] > 0 and result["startup_seconds"] >= 0
    assert float(match[1]) == pytest.approx(result["requests_per_second"], abs=0.01)
    assert float(match[3]) == pytest.approx(result["output_tokens_per_second"], abs=0.01)
    assert result["tokens_per_second"] == pytest.approx(result["total_num_tokens"] / result["elapsed_time"])


@pytest.mark.parametrize("backend", ["ember", "hf"])
def test_throughput_random_weights(backend, tiny_config_dir, capsys, tmp_path):
    result, printed = run(capsys, tmp_path, "--backend", backend, "--model", tiny_config_dir, *SMALL,
                          "--hf-max-batch-size", "2")
    check(result, printed, backend, 5, 5 * 12, 5 * 5)
    assert result["random_weights"] and result["workload"] == "random_12in_5out_x5"
    if backend == "hf":
        assert result["hf_mode"] == "static" and result["hf_max_batch_size"] == 2


def test_throughput_hf_continuous_batching(tiny_config_dir, capsys, tmp_path):
    result, printed = run(capsys, tmp_path, "--backend", "hf", "--hf-continuous", "--model", tiny_config_dir,
                          "--random-weights", "--input-len", "6", "--output-len", "3", "--num-prompts", "3")
    check(result, printed, "hf", 3, 18, 9)
    assert result["hf_mode"] == "continuous"


def test_hf_continuous_needs_the_transformers_api(tiny_config_dir, monkeypatch):
    from transformers import GenerationMixin

    owner = next(c for c in GenerationMixin.__mro__ if "init_continuous_batching" in vars(c))
    monkeypatch.delattr(owner, "init_continuous_batching")
    with pytest.raises(RuntimeError, match="--hf-continuous needs"):
        HFBackend(tiny_config_dir, __import__("torch").float32, "cpu", True, 0, False, 4, continuous=True)


def test_throughput_sharegpt_dataset(tiny_config_with_tokenizer, capsys, tmp_path):
    from tests.tiny_models import smollm2_tokenizer

    conversations = [("What is the capital of France, and why?", "Paris, because it has long been the seat."),
                     ("Tell me a short story about a brave little robot.", "Once upon a time a robot named Bolt."),
                     ("Hi", "Hello there, how can I help you today?")]  # prompt under 4 tokens: dropped
    data = [{"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]} for q, a in conversations]
    dataset = tmp_path / "sharegpt.json"
    dataset.write_text(json.dumps(data))
    result, printed = run(capsys, tmp_path, "--model", tiny_config_with_tokenizer, "--random-weights",
                          "--dataset", str(dataset), "--num-prompts", "10")
    tok = smollm2_tokenizer()
    kept = [(len(tok(q).input_ids), len(tok(a).input_ids)) for q, a in conversations[:2]]
    check(result, printed, "ember", 2, sum(i for i, _ in kept), sum(o for _, o in kept))
    assert result["workload"] == "dataset:sharegpt.json"


def test_throughput_workload_ids_modulo_a_small_vocabulary(tiny_config_dir, capsys, tmp_path):
    result, printed = run(capsys, tmp_path, "--model", tiny_config_dir, "--random-weights", "--workload", "seed",
                          "--ids-modulo-vocab", "--num-prompts", "2")
    check(result, printed, "ember", 2, 2 * 64, 2 * 128)
    assert result["workload"] == "seed%1000"


@pytest.mark.parametrize("argv, message", [
    (["--workload", "seed", "--input-len", "4"], "--workload fixes the requests"),
    (["--input-len", "4"], "give --workload, --dataset"),
    (["--workload", "seed"], "vocabulary has 1000"),
])
def test_throughput_flag_errors(argv, message, tiny_config_dir):
    with pytest.raises(SystemExit, match=message):
        cli.main(["throughput", "--model", tiny_config_dir, "--random-weights", *argv])


def test_register_adds_bench_to_a_parent_cli():
    parser = argparse.ArgumentParser(prog="ember")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", "throughput", "--workload", "nano", "--backend", "hf", "--hf-continuous"])
    assert args.command == "bench" and args.bench_command == "throughput" and callable(args.func)
    assert args.workload == "nano" and args.hf_continuous
    args = parser.parse_args(["bench", "latency", "--batch-size", "1"])
    assert (args.num_iters_warmup, args.num_iters) == (10, 30)


def test_standalone_module(tiny_config_dir):
    done = subprocess.run([sys.executable, "-m", "ember.entrypoints.bench.cli", "throughput",
                           "--model", tiny_config_dir, *SMALL], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert LINE.search(done.stdout), done.stdout
