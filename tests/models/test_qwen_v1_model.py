"""Qwen v1 (QWenLMHeadModel) runs natively: its logits equal an independent plain-torch
implementation of the published architecture, and the engine's greedy tokens equal that
reference's; the checkpoint's remote code is never executed."""
import pytest
import torch

from ember import LLM, SamplingParams
from ember.engine_args import EngineArgs
from ember.models.loader import load_model
from tests.models.qwen_v1_checkpoint import build_qwen_v1_checkpoint
from tests.models.qwen_v1_reference import QwenV1Reference

PROMPTS = [[9707, 11, 1879, 0], list(range(1000, 1037)), [151644, 872, 198, 108386, 151645, 198]]


@pytest.mark.parametrize("overrides", [{}, {"no_bias": False, "rotary_pct": 0.5}],
                         ids=["as-released", "biases-partial-rotary"])
def test_logits_equal_reference(tmp_path, overrides):
    directory = build_qwen_v1_checkpoint(str(tmp_path), seed=1, **overrides)
    config = EngineArgs(model=directory, trust_remote_code=True).resolve()
    model = load_model(directory, config.hf_config, torch.float32, "cpu", config.max_model_len)
    reference = QwenV1Reference(directory)
    ids = PROMPTS[1]
    with torch.inference_mode():
        got = model.compute_logits(model(torch.tensor(ids), torch.arange(len(ids))))
    torch.testing.assert_close(got, reference.logits(ids), rtol=1e-4, atol=1e-4)


def test_engine_greedy_equals_reference(qwen_v1_dir):
    reference = QwenV1Reference(qwen_v1_dir)
    expected = [reference.greedy(p, 8) for p in PROMPTS]
    # A small token budget splits the longer prompt into chunks.
    llm = LLM(qwen_v1_dir, trust_remote_code=True, max_num_batched_tokens=16, max_num_seqs=4)
    params = SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True)
    outs = llm.generate([{"prompt_token_ids": p} for p in PROMPTS], params, use_tqdm=False)
    assert [o.outputs[0].token_ids for o in outs] == expected


def test_context_length_and_stop_ids(qwen_v1_dir):
    llm = LLM(qwen_v1_dir, trust_remote_code=True)
    assert llm.llm_engine.config.max_model_len == 256  # seq_length, below max_position_embeddings (512)
    # <|endoftext|> from generation_config.json, then ChatML's <|im_end|> and <|im_start|>.
    assert llm.llm_engine.eos_token_ids == [151643, 151645, 151644]
    with pytest.raises(ValueError, match="max_model_len"):
        EngineArgs(model=qwen_v1_dir, max_model_len=257).resolve()


def test_chat_renders_chatml(qwen_v1_dir):
    llm = LLM(qwen_v1_dir, trust_remote_code=True)
    out = llm.chat([{"role": "user", "content": "你好"}], SamplingParams(max_tokens=2), use_tqdm=False)[0]
    assert out.prompt == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                          "<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n")
    ids = out.prompt_token_ids
    assert ids[0] == 151644 and ids.count(151645) == 2 and ids[-3:] == [151644, 77091, 198]  # assistant\n
