"""On the GPU (bf16, Triton kernels, CUDA graphs): Ember's distribution stays close to
transformers' on a real-shaped model with random weights, for a mixed batch."""
import random

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def qwen3_small(tmp_path_factory):
    from transformers import AutoModelForCausalLM, Qwen3Config

    # Qwen3-0.6B's layer shapes, fewer layers: the kernels see real head counts and dims.
    cfg = Qwen3Config(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=8,
                      num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=4096,
                      rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    path = str(tmp_path_factory.mktemp("qwen3_small"))
    model.save_pretrained(path)
    return path, model.eval()


def test_bf16_prompt_logprobs_close_to_transformers(qwen3_small):
    from ember import LLM, SamplingParams

    path, hf = qwen3_small
    rng = random.Random(0)
    prompts = [[rng.randrange(1000, 150000) for _ in range(n)] for n in (5, 17, 130, 600, 1000, 33)]
    llm = LLM(path, max_model_len=2048, max_num_batched_tokens=512, gpu_memory_utilization=0.5,
              skip_tokenizer_init=True)
    outs = llm.generate([{"prompt_token_ids": p} for p in prompts],
                        SamplingParams(max_tokens=1, prompt_logprobs=0), use_tqdm=False)
    worst = 0.0
    for p, out in zip(prompts, outs):
        with torch.no_grad():
            ref = hf(torch.tensor([p], device="cuda")).logits[0].float().log_softmax(-1)
        got = torch.tensor([out.prompt_logprobs[i][p[i]].logprob for i in range(1, len(p))])
        want = ref[torch.arange(len(p) - 1), torch.tensor(p[1:], device="cuda")].cpu()
        worst = max(worst, (got - want).abs().max().item())
    print(f"max abs logprob error vs transformers (bf16): {worst:.4f}")
    assert worst < 0.25


def test_bf16_greedy_mostly_agrees_with_transformers(qwen3_small):
    from ember import LLM, SamplingParams

    path, hf = qwen3_small
    rng = random.Random(1)
    prompts = [[rng.randrange(1000, 150000) for _ in range(rng.randint(10, 300))] for _ in range(8)]
    llm = LLM(path, max_model_len=2048, gpu_memory_utilization=0.5, skip_tokenizer_init=True)
    outs = llm.generate([{"prompt_token_ids": p} for p in prompts],
                        SamplingParams(temperature=0, max_tokens=24, ignore_eos=True), use_tqdm=False)
    agree = total = 0
    for p, out in zip(prompts, outs):
        with torch.no_grad():
            ref = hf.generate(torch.tensor([p], device="cuda"), do_sample=False, max_new_tokens=24,
                              eos_token_id=None, pad_token_id=0)[0, len(p):].tolist()
        got = out.outputs[0].token_ids
        # Count the steps before the first divergence: after it, the contexts differ.
        same = next((i for i, (a, b) in enumerate(zip(got, ref)) if a != b), len(ref))
        agree += same
        total += len(ref)
    print(f"greedy steps agreeing with transformers before divergence: {agree}/{total}")
    assert agree / total > 0.6


def test_temperature_sampling_is_reproducible_for_the_engine_seed(qwen3_small):
    """Plain temperature sampling takes the one-pass Gumbel-max kernel on the GPU; its noise comes
    from the engine's seeded generator, so the same seed gives the same tokens, another seed others."""
    from ember import LLM, SamplingParams

    path, _ = qwen3_small
    prompts = [{"prompt_token_ids": [1000 + 7 * i + j for j in range(20)]} for i in range(4)]
    params = SamplingParams(temperature=0.8, max_tokens=16, ignore_eos=True)

    def run(seed):
        llm = LLM(path, max_model_len=512, gpu_memory_utilization=0.3, skip_tokenizer_init=True, seed=seed)
        tokens = [o.outputs[0].token_ids for o in llm.generate(prompts, params, use_tqdm=False)]
        del llm
        torch.cuda.empty_cache()
        return tokens

    first = run(0)
    assert all(len(t) == 16 and all(0 <= x < 151936 for x in t) for t in first)
    assert run(0) == first
    assert run(1) != first
