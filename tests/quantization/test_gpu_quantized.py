"""On the GPU (the quantized GEMM paths of ember/quantization/gemm_paths.py, CUDA graphs, bf16):
each quantized format's prompt logprobs stay close to transformers' bf16 run of its
dequantized twin (the same weights), and greedy decoding agrees with it for most steps, at
real layer widths (Qwen3-0.6B's). Prompts of 5..300 tokens, in chunks of 128, so prefill, the
mid-size and the decode paths all run. Skipped without CUDA. No tokenizer: prompts are ids."""
import gc
import random

import pytest
import torch

from ember import LLM, SamplingParams
from ember.kernels.quant_fp8_act import quantize_fp8_ref
from tests.quantization.checkpoints import write_quantized
from tests.tiny_models import build_tiny_checkpoint

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

# Two bf16 runs of this random model differ by themselves: transformers' bf16 run against its
# fp32 run of the same weights moves prompt logprobs by up to 0.12 and keeps 88/128 greedy steps
# (CPU); on the H200 Ember against the bf16 twin measured 0.10 (gptq-int4, 104/128) and 0.16
# (gptq-int8-act-order, 87/128). Hence 0.3, and more than half of the greedy steps. W8A8 FP8
# also rounds every linear layer's input to e4m3 per token (per 1x128 group): the twin's run
# rounds them the same way (`_round_activations_to_e4m3`), which leaves bf16's differences only
# (unrounded, the e4m3 inputs alone move them by 0.71 and keep 36/128 steps on the CPU; the
# H200 measured 0.69 and 28/128 against the unrounded twin). An e5m2 KV cache rounds K and V
# to 2 mantissa bits, which the twin does not: rounding them alone moved the logprobs by 0.90
# and kept 19/128 greedy steps on the CPU (the H200: 0.81, 6/128), so that case bounds the
# logprobs at 1.5 and does not ask for greedy agreement.
# format, packer settings, KV cache dtype, e4m3 activation group of the twin's run (0: none,
# None: per token), largest prompt logprob error, least share of greedy steps agreeing.
CASES = {
    "gptq-int4": ("gptq", dict(bits=4, group_size=128), "auto", 0, 0.3, 0.5),
    "gptq-int4-g32-act-order": ("gptq", dict(bits=4, group_size=32, desc_act=True), "auto", 0, 0.3, 0.5),
    "gptq-int8-act-order": ("gptq", dict(bits=8, group_size=128, desc_act=True), "auto", 0, 0.3, 0.5),
    "awq": ("awq", dict(group_size=128), "auto", 0, 0.3, 0.5),
    "fp8": ("fp8", {}, "auto", None, 0.3, 0.5),
    "fp8-block": ("fp8_block", dict(block=(128, 128)), "auto", 128, 0.3, 0.5),
    "gptq-int4-fp8-kv-cache": ("gptq", dict(bits=4, group_size=128), "fp8_e5m2", 0, 1.5, 0.0),
}
PROMPT_LENGTHS = (5, 40, 300)
GREEDY_PROMPTS, GREEDY_STEPS = 8, 16


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    return build_tiny_checkpoint(str(tmp_path_factory.mktemp("dense")), "qwen3", with_tokenizer=False,
                                 vocab_size=49152, hidden_size=1024, intermediate_size=3072, num_hidden_layers=4,
                                 num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                                 initializer_range=0.05)


def _steps_agreeing(got: list[int], want: list[int]) -> int:
    """Steps before the first divergence: after it, the contexts differ."""
    return next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), len(want))


def _round_activations_to_e4m3(model, group) -> None:
    """Each decoder linear layer's input rounded as W8A8's quantizer rounds it."""
    def hook(module, args):
        x = args[0]
        q, scale = quantize_fp8_ref(x.reshape(-1, x.shape[-1]), group)
        per_feature = scale.repeat_interleave(x.shape[-1] // scale.shape[1], 1)
        return ((q.float() * per_feature).to(x.dtype).reshape(x.shape),)

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and ".layers." in name:
            module.register_forward_pre_hook(hook)


def _measure(dense, tmp_path, case) -> tuple[float, int]:
    """(largest prompt logprob error, greedy steps agreeing) against the twin. Its own function
    so that the engine and the twin (the engine's KV cache is 30% of the GPU) are freed when it
    returns, before the next case profiles its memory: a failed assertion's traceback would
    otherwise keep them."""
    from transformers import AutoModelForCausalLM

    fmt, settings, kv_cache_dtype, act_group, _, _ = CASES[case]
    quantized, dequantized = write_quantized(dense, str(tmp_path), fmt, **settings)
    rng = random.Random(0)
    prompts = [[rng.randrange(3, 49000) for _ in range(n)] for n in PROMPT_LENGTHS]
    greedy_prompts = [[rng.randrange(3, 49000) for _ in range(rng.randint(10, 200))] for _ in range(GREEDY_PROMPTS)]
    llm = LLM(quantized, dtype="bfloat16", max_model_len=512, max_num_batched_tokens=128, max_num_seqs=16,
              gpu_memory_utilization=0.3, kv_cache_dtype=kv_cache_dtype, skip_tokenizer_init=True)
    outs = llm.generate([{"prompt_token_ids": p} for p in prompts],
                        SamplingParams(max_tokens=8, prompt_logprobs=0, ignore_eos=True), use_tqdm=False)
    greedy = llm.generate([{"prompt_token_ids": p} for p in greedy_prompts],
                          SamplingParams(temperature=0, max_tokens=GREEDY_STEPS, ignore_eos=True), use_tqdm=False)
    llm.llm_engine.shutdown()
    del llm
    hf = AutoModelForCausalLM.from_pretrained(dequantized, dtype=torch.bfloat16).cuda().eval()
    if act_group != 0:
        _round_activations_to_e4m3(hf, act_group)
    worst = 0.0
    for p, out in zip(prompts, outs):
        assert len(out.outputs[0].token_ids) == 8  # decode steps replay CUDA graphs
        with torch.no_grad():
            ref = hf(torch.tensor([p], device="cuda")).logits[0].float().log_softmax(-1)
        want = ref[torch.arange(len(p) - 1), torch.tensor(p[1:], device="cuda")].cpu()
        got = torch.tensor([out.prompt_logprobs[i][p[i]].logprob for i in range(1, len(p))])
        worst = max(worst, (got - want).abs().max().item())
    agree = 0
    for p, out in zip(greedy_prompts, greedy):
        with torch.no_grad():
            ref = hf.generate(torch.tensor([p], device="cuda"), do_sample=False, max_new_tokens=GREEDY_STEPS,
                              eos_token_id=None, pad_token_id=0)[0, len(p):].tolist()
        agree += _steps_agreeing(out.outputs[0].token_ids, ref)
    return worst, agree


@pytest.mark.parametrize("case", list(CASES))
def test_quantized_model_on_gpu(dense, tmp_path, case):
    try:
        worst, agree = _measure(dense, tmp_path, case)
    finally:
        gc.collect()
        torch.cuda.empty_cache()
    *_, max_error, min_agreeing = CASES[case]
    total = GREEDY_PROMPTS * GREEDY_STEPS
    print(f"{case}: max abs prompt logprob error vs the bf16 twin: {worst:.4f}; "
          f"greedy steps agreeing before divergence: {agree}/{total}")
    assert worst < max_error
    assert agree / total >= min_agreeing
