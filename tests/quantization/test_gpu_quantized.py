"""On the GPU (the quantized GEMM paths of ember/quantization/gemm_paths.py, CUDA graphs, bf16):
each quantized format's prompt logprobs stay as close to transformers' fp32 run of its
dequantized twin (the same weights) as transformers' own bf16 run, and greedy decoding agrees
with it for at least half as many steps as that bf16 run does, at
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

# The reference is the twin in fp32; what a bf16 run may differ from it by is measured in each
# case as the floor: transformers' own bf16 run of the twin (with the same e4m3 rounding of the
# linear layers' inputs for W8A8, `_round_activations_to_e4m3`) against that fp32 run. Ember's
# prompt logprobs must stay within FLOOR_FACTOR times the floor (and never need to beat the
# absolute bound), and its greedy tokens must agree with the fp32 twin's for at least the given
# share of the steps the bf16 twin keeps. A fixed bound cannot serve W8A8: rounding to e4m3
# turns bf16's rounding noise into whole e4m3 steps (3 mantissa bits), so the rounded twin in
# bf16 against the rounded twin in fp32 moved the logprobs by 0.71 (per token) and 0.61 (1x128
# groups) on the CPU, 0.81 and 0.60 on the H200, as much as dropping the rounding altogether
# (0.72 on the CPU): that the kernels round as W8A8 should is pinned per layer by
# tests/kernels/test_quant_linear_paths.py (and benchmarks/fp8_layer_gpu.py on the GPU: every
# W8A8 path within 1.7e-3 of dequant(W) @ round_e4m3(x) on the H200), here only that the model
# is no further from fp32 than bf16 itself (Ember's one forward: 0.59 and 0.56 on the H200).
# Unrounded, bf16 moves them by 0.10 (CPU) to 0.13 (H200).
# For the same reason greedy agreement says nothing about W8A8 here (the rounded bf16 twin kept
# 0 and 7 of 16 steps of the rounded fp32 twin's on the CPU), so those cases do not ask for it.
# An e5m2 KV cache rounds K and V to 2 mantissa bits, which the twin does not: rounding them
# alone moved the logprobs by 0.90 and kept 19/128 greedy steps on the CPU (the H200: 0.81,
# 6/128), so that case bounds the logprobs at 1.5 and does not ask for greedy agreement.
# format, packer settings, KV cache dtype, e4m3 activation group of the twin's run (0: none,
# None: per token), absolute bound on the prompt logprob error, least share of the bf16 twin's
# greedy steps agreeing.
CASES = {
    "gptq-int4": ("gptq", dict(bits=4, group_size=128), "auto", 0, 0.3, 0.5),
    "gptq-int4-g32-act-order": ("gptq", dict(bits=4, group_size=32, desc_act=True), "auto", 0, 0.3, 0.5),
    "gptq-int8-act-order": ("gptq", dict(bits=8, group_size=128, desc_act=True), "auto", 0, 0.3, 0.5),
    "awq": ("awq", dict(group_size=128), "auto", 0, 0.3, 0.5),
    "fp8": ("fp8", {}, "auto", None, 0.3, 0.0),
    "fp8-block": ("fp8_block", dict(block=(128, 128)), "auto", 128, 0.3, 0.0),
    "gptq-int4-fp8-kv-cache": ("gptq", dict(bits=4, group_size=128), "fp8_e5m2", 0, 1.5, 0.0),
}
FLOOR_FACTOR = 1.5
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


def _twin_run(dequantized: str, dtype, act_group, prompts, greedy_prompts):
    """transformers' run of the twin in `dtype`: (prompt logprobs per prompt, greedy tokens per prompt)."""
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(dequantized, dtype=dtype).cuda().eval()
    if act_group != 0:
        _round_activations_to_e4m3(hf, act_group)
    logprobs, greedy = [], []
    with torch.no_grad():
        for p in prompts:
            ref = hf(torch.tensor([p], device="cuda")).logits[0].float().log_softmax(-1)
            logprobs.append(ref[torch.arange(len(p) - 1), torch.tensor(p[1:], device="cuda")].cpu())
        for p in greedy_prompts:
            greedy.append(hf.generate(torch.tensor([p], device="cuda"), do_sample=False, max_new_tokens=GREEDY_STEPS,
                                      eos_token_id=None, pad_token_id=0)[0, len(p):].tolist())
    del hf
    return logprobs, greedy


def _compare(logprobs, greedy, ref_logprobs, ref_greedy) -> tuple[float, int]:
    """(largest prompt logprob difference, greedy steps agreeing)."""
    worst = max((a - b).abs().max().item() for a, b in zip(logprobs, ref_logprobs))
    return worst, sum(_steps_agreeing(a, b) for a, b in zip(greedy, ref_greedy))


def _measure(dense, tmp_path, case) -> tuple[tuple[float, int], tuple[float, int]]:
    """((largest prompt logprob error, greedy steps agreeing) of Ember against the fp32 twin,
    the same of the bf16 twin: the floor). Its own function so that the engine and the twin
    (the engine's KV cache is 30% of the GPU) are freed when it returns, before the next case
    profiles its memory: a failed assertion's traceback would otherwise keep them."""
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
    assert all(len(out.outputs[0].token_ids) == 8 for out in outs)  # decode steps replay CUDA graphs
    ember_logprobs = [torch.tensor([out.prompt_logprobs[i][p[i]].logprob for i in range(1, len(p))])
                      for p, out in zip(prompts, outs)]
    ember_greedy = [list(out.outputs[0].token_ids) for out in greedy]
    reference = _twin_run(dequantized, torch.float32, act_group, prompts, greedy_prompts)
    floor = _compare(*_twin_run(dequantized, torch.bfloat16, act_group, prompts, greedy_prompts), *reference)
    return _compare(ember_logprobs, ember_greedy, *reference), floor


@pytest.mark.parametrize("case", list(CASES))
def test_quantized_model_on_gpu(dense, tmp_path, case):
    try:
        (worst, agree), (floor, floor_agree) = _measure(dense, tmp_path, case)
    finally:
        gc.collect()
        torch.cuda.empty_cache()
    *_, max_error, min_share = CASES[case]
    total = GREEDY_PROMPTS * GREEDY_STEPS
    print(f"{case}: against the fp32 twin, max abs prompt logprob error {worst:.4f} (bf16 twin: {floor:.4f}); "
          f"greedy steps agreeing before divergence {agree}/{total} (bf16 twin: {floor_agree}/{total})")
    assert worst < max(max_error, FLOOR_FACTOR * floor)
    assert agree >= min_share * floor_agree
