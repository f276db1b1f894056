"""Tiny checkpoints whose shapes exercise every way of splitting a model over 2 and 4 ranks,
and a helper that runs greedy generation on an engine and always shuts it down."""
import pytest
import torch

from ember import LLM, SamplingParams
from tests.tiny_models import build_tiny_checkpoint

MAX_NEW = 8
# A long prompt (chunked under a 32-token budget), a short one, and a shared prefix.
PROMPTS = [list(range(1000, 1045)), [5, 6, 7, 8, 100], [300, 400, 20000], list(range(1000, 1020)) + [77]]


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """The driver rank shares 2 cores with up to 3 worker processes: OpenMP threads that spin
    waiting for each other would starve them."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """4 attention heads, 2 kv heads: tp=2 splits the kv heads, tp=4 replicates them.
    qwen2 gets a vocabulary no rank count divides (its last slice is padded); qwen3 ties its
    LM head to the embedding."""
    def build(family, **overrides):
        return build_tiny_checkpoint(str(tmp_path_factory.mktemp(family)), family, **overrides)

    return {"llama": build("llama"), "qwen2": build("qwen2", vocab_size=49157), "qwen3": build("qwen3")}


def greedy(model: str, **engine_args) -> list[list[int]]:
    """Greedy tokens of PROMPTS under a small token budget (chunked prefill) with overlapped
    scheduling (placeholder tokens filled from the driver's broadcast)."""
    llm = LLM(model, max_num_batched_tokens=32, max_num_seqs=4, async_scheduling=True, **engine_args)
    try:
        params = SamplingParams(temperature=0.0, max_tokens=MAX_NEW, ignore_eos=True)
        outs = llm.generate([{"prompt_token_ids": p} for p in PROMPTS], params, use_tqdm=False)
        return [o.outputs[0].token_ids for o in outs]
    finally:
        llm.llm_engine.shutdown()
