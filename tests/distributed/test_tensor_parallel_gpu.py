"""On 2 GPUs (NCCL, Triton kernels, CUDA graphs captured on every rank): TP=2 gives the greedy
tokens of TP=1 in fp32; a process that ran a TP=2 LLM exits within 5 s of its last request;
`ember serve -tp 2` exits 0 after SIGTERM, leaving no process. Each test has a timeout that
ends the run with every thread's stack, so a hang fails instead of stalling (NCCL hangs sit in
C++, where only pytest-timeout's thread method reaches). Skipped without 2 GPUs;
benchmarks/tp_gpu.sh runs them. The offline checkpoints carry no tokenizer (prompts are token
ids); the server's has a byte-level one built here with the `tokenizers` library, so the GPU
machine needs no tokenizer files."""
import os
import signal
import subprocess
import time

import httpx
import pytest
import torch

from tests.distributed.conftest import greedy
from tests.distributed.processes import generate_then_exit, is_worker
from tests.processes import descendants, wait_gone
from tests.server.launcher import ServerProcess, serve_command
from tests.tiny_models import build_tiny_checkpoint

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")]

ENGINE = dict(device="cuda", dtype="float32", gpu_memory_utilization=0.3)
SHUTDOWN_TIMEOUT_S = 10


@pytest.mark.timeout(300, method="thread")
@pytest.mark.parametrize("family", ["llama", "qwen3"])
def test_two_gpus_greedy_equal_one(tmp_path, family):
    checkpoint = build_tiny_checkpoint(str(tmp_path), family, with_tokenizer=False, vocab_size=49152)
    engine = dict(ENGINE, skip_tokenizer_init=True)
    expected = greedy(checkpoint, **engine)
    assert greedy(checkpoint, tensor_parallel_size=2, **engine) == expected


@pytest.mark.timeout(300, method="thread")
def test_an_llm_process_exits_within_5_s_of_its_last_request(tmp_path):
    checkpoint = build_tiny_checkpoint(str(tmp_path), "llama", with_tokenizer=False, vocab_size=49152)
    run = generate_then_exit(checkpoint, dict(ENGINE, skip_tokenizer_init=True))
    print(f"TP=2 LLM process: exit code {run.returncode}, {run.seconds:.2f} s after its last request; "
          f"workers {run.workers}, left alive {run.left}")
    assert run.returncode == 0, run.output[-5000:]
    assert run.workers  # rank 1 ran in a worker process
    assert run.seconds < 5, run.output[-5000:]
    assert run.left == []


def _byte_level_tokenizer(directory: str) -> int:
    """A byte-level BPE tokenizer without merges (every byte a token) saved in `directory`;
    returns its size, the model's vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokenizer = Tokenizer(models.BPE({c: i for i, c in enumerate(alphabet)}, []))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>", pad_token="<|pad|>")
    fast.save_pretrained(directory)
    return len(fast)


@pytest.mark.timeout(360, method="thread")
def test_serve_tp2_exits_0_after_sigterm_and_leaves_no_process(tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    checkpoint = str(tmp_path / "tiny")
    build_tiny_checkpoint(checkpoint, "llama", with_tokenizer=False, vocab_size=_byte_level_tokenizer(checkpoint))
    server = ServerProcess(serve_command(checkpoint, "-tp", "2", "--served-model-name", "tiny", "--device", "cuda",
                                         "--dtype", "float32", "--gpu-memory-utilization", "0.3",
                                         "--max-num-seqs", "8", "--shutdown-timeout", str(SHUTDOWN_TIMEOUT_S)),
                           str(tmp_path / "server.log"))
    try:
        server.wait_ready(timeout=240)
        reply = httpx.post(server.url + "/v1/completions", timeout=60,
                           json={"model": "tiny", "prompt": "Hello", "max_tokens": 8, "ignore_eos": True})
        assert reply.status_code == 200, reply.text
        assert reply.json()["usage"]["completion_tokens"] == 8
        family = descendants(server.proc.pid)
        assert any(map(is_worker, family)), server.log()[-3000:]  # rank 1 runs in a worker process
        os.kill(server.proc.pid, signal.SIGTERM)
        signalled = time.monotonic()
        try:
            code = server.proc.wait(SHUTDOWN_TIMEOUT_S + 5)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {SHUTDOWN_TIMEOUT_S + 5} s after SIGTERM:\n"
                                 f"{server.log()[-3000:]}") from None
        seconds = time.monotonic() - signalled
        left = wait_gone(family, 2.0)
        print(f"ember serve -tp 2: exit code {code}, {seconds:.2f} s after SIGTERM; left alive {left}")
        assert code == 0, server.log()[-3000:]
        assert seconds < SHUTDOWN_TIMEOUT_S  # nothing was in flight: no drain to wait for
        assert left == []
    finally:
        server.stop()
