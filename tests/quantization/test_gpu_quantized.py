"""On the GPU (Triton GEMMs on packed weights, CUDA graphs, fp16): prompt logprobs of each
quantized format stay close to transformers' fp32 run of the dequantized twin, at real layer
widths (Qwen3-0.6B's). Skipped without CUDA. No tokenizer: prompts are token ids."""
import random

import pytest
import torch

from ember import LLM, SamplingParams
from tests.quantization.checkpoints import write_quantized
from tests.tiny_models import build_tiny_checkpoint

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CASES = {
    "gptq-int4": ("gptq", dict(bits=4, group_size=128), "auto"),
    "gptq-int8-act-order": ("gptq", dict(bits=8, group_size=128, desc_act=True), "auto"),
    "awq": ("awq", dict(group_size=128), "auto"),
    "fp8": ("fp8", {}, "auto"),
    "fp8-block": ("fp8_block", dict(block=(128, 128)), "auto"),
    "gptq-int4-fp8-kv-cache": ("gptq", dict(bits=4, group_size=128), "fp8_e5m2"),
}
PROMPT_LENGTHS = (5, 40, 300)


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    return build_tiny_checkpoint(str(tmp_path_factory.mktemp("dense")), "qwen3", with_tokenizer=False,
                                 vocab_size=49152, hidden_size=1024, intermediate_size=3072,
                                 num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                                 initializer_range=0.02)


@pytest.mark.parametrize("case", list(CASES))
def test_quantized_prompt_logprobs_on_gpu(dense, tmp_path, case):
    from transformers import AutoModelForCausalLM

    fmt, settings, kv_cache_dtype = CASES[case]
    quantized, dequantized = write_quantized(dense, str(tmp_path), fmt, **settings)
    rng = random.Random(0)
    prompts = [[rng.randrange(3, 49000) for _ in range(n)] for n in PROMPT_LENGTHS]
    llm = LLM(quantized, dtype="float16", max_model_len=512, max_num_batched_tokens=128,
              gpu_memory_utilization=0.3, kv_cache_dtype=kv_cache_dtype, skip_tokenizer_init=True)
    outs = llm.generate([{"prompt_token_ids": p} for p in prompts],
                        SamplingParams(max_tokens=8, prompt_logprobs=0, ignore_eos=True), use_tqdm=False)
    hf = AutoModelForCausalLM.from_pretrained(dequantized, dtype=torch.float32).cuda().eval()
    worst = 0.0
    for p, out in zip(prompts, outs):
        assert len(out.outputs[0].token_ids) == 8  # decode steps replay CUDA graphs
        with torch.no_grad():
            ref = hf(torch.tensor([p], device="cuda")).logits[0].log_softmax(-1)
        want = ref[torch.arange(len(p) - 1), torch.tensor(p[1:], device="cuda")].cpu()
        got = torch.tensor([out.prompt_logprobs[i][p[i]].logprob for i in range(1, len(p))])
        worst = max(worst, (got - want).abs().max().item())
    print(f"{case}: max abs prompt logprob error vs the fp32 twin: {worst:.4f}")
    assert worst < (0.3 if kv_cache_dtype != "auto" else 0.1)
