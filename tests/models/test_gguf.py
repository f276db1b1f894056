"""GGUF checkpoints of Llama, Qwen2 and Qwen3 in every quantization type Ember supports:
dequantized at load, config from the file's metadata, tokenizer from the file, and greedy
tokens equal to transformers loading the same file (the fp32 path; the bf16 CPU path that keeps
the blocks is tests/quantization/test_gguf_cpu.py)."""
import os

import pytest
import torch
from gguf import GGMLQuantizationType as Q

from ember import LLM, SamplingParams
from ember.engine_args import EngineArgs
from ember.models.loader import load_model
from tests.models.gguf_files import ARCHES, write_gguf

QUANT_TYPES = [Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q4_K, Q.Q5_K, Q.Q6_K]
PROMPTS = ["Hello world, the quick brown fox", "def add(a, b):\n    return a + b", "Ember"]
MAX_NEW = 8


def transformers_greedy(path: str, prompts: list[list[int]]) -> list[list[int]]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                 dtype=torch.float32).eval()
    outs = []
    with torch.no_grad():
        for p in prompts:
            ids = torch.tensor([p])
            gen = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=MAX_NEW, eos_token_id=None, pad_token_id=0)
            outs.append(gen[0, len(p):].tolist())
    return outs


@pytest.mark.parametrize("qtype", QUANT_TYPES, ids=lambda q: q.name)
@pytest.mark.parametrize("family", list(ARCHES))
def test_greedy_equals_transformers(tmp_path, family, qtype):
    path = write_gguf(str(tmp_path / f"tiny-{family}-{qtype.name}.gguf"), family, qtype)
    llm = LLM(path, dtype="float32")
    assert llm.llm_engine.config.max_model_len == 512  # the file's context_length
    tokenizer = llm.get_tokenizer()
    prompts = [tokenizer.encode(p) for p in PROMPTS]
    params = SamplingParams(temperature=0.0, max_tokens=MAX_NEW, ignore_eos=True)
    outs = llm.generate(PROMPTS, params, use_tqdm=False)
    assert [o.prompt_token_ids for o in outs] == prompts
    assert [o.outputs[0].token_ids for o in outs] == transformers_greedy(path, prompts)


@pytest.mark.parametrize("dtype", [torch.float16])
def test_weights_kept_in_requested_dtype(tmp_path, dtype):
    path = write_gguf(str(tmp_path / "tiny.gguf"), "qwen2", Q.Q8_0)
    config = EngineArgs(model=path).resolve()
    full = load_model(path, config.hf_config, torch.float32, "cpu", 64)
    low = load_model(path, config.hf_config, dtype, "cpu", 64)
    for (name, p32), (_, p) in zip(full.named_parameters(), low.named_parameters()):
        assert p.dtype == dtype, name
        torch.testing.assert_close(p.float(), p32, rtol=1e-2, atol=1e-3)
