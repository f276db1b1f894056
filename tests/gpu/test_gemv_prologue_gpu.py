"""On the GPU (bf16, CUDA graphs): batch-1 decoding with the norms and SiLU-and-mul folded into
the one-row GEMVs (EMBER_GEMV_PROLOGUE=1) scores its own greedy tokens as the prefill (many
rows: cuBLAS and the separate kernels) scores the same sequence."""
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def qwen2_small(tmp_path_factory):
    from transformers import AutoModelForCausalLM, Qwen2Config

    # Qwen2.5-0.5B's layer shapes (qkv bias; K = 896 and 4,864 leave a ragged last tile), fewer layers.
    cfg = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=4,
                      num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=4096,
                      rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    path = str(tmp_path_factory.mktemp("qwen2_small"))
    model.save_pretrained(path)
    return path


def test_folded_batch1_decode_scores_its_tokens_as_the_prefill_does(qwen2_small, monkeypatch):
    from ember import LLM, SamplingParams
    from ember.models.layers import linear

    monkeypatch.setattr(linear, "_GEMV_PROLOGUE", True)  # what EMBER_GEMV_PROLOGUE=1 sets at import
    llm = LLM(qwen2_small, max_model_len=512, gpu_memory_utilization=0.3, skip_tokenizer_init=True)
    prompt = list(range(1000, 1040))
    decoded = llm.generate([{"prompt_token_ids": prompt}],
                           SamplingParams(temperature=0, max_tokens=32, ignore_eos=True, logprobs=0),
                           use_tqdm=False)[0].outputs[0]
    tokens = list(decoded.token_ids)
    scored = llm.generate([{"prompt_token_ids": prompt + tokens}], SamplingParams(max_tokens=1, prompt_logprobs=0),
                          use_tqdm=False)[0].prompt_logprobs
    # The first token comes from the prompt's prefill; the other 31 from folded decode steps.
    got = torch.tensor([decoded.logprobs[i][t].logprob for i, t in enumerate(tokens)])
    want = torch.tensor([scored[len(prompt) + i][t].logprob for i, t in enumerate(tokens)])
    worst = (got - want).abs().max().item()
    print(f"max abs logprob difference, folded decode vs prefill (bf16): {worst:.4f}")
    assert worst < 0.25
