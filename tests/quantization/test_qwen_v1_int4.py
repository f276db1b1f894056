"""Qwen v1's Int4 checkpoints (Qwen-7B-Chat-Int4): GPTQ with q, k and v fused on disk in
c_attn, whose qweight/qzeros/scales carry the output dimension second. Ember equals the plain
torch Qwen v1 reference run on the dequantized twin."""
import torch

from ember import LLM, SamplingParams
from ember.engine_args import EngineArgs
from ember.models.loader import load_model
from tests.models.qwen_v1_checkpoint import build_qwen_v1_checkpoint
from tests.models.qwen_v1_reference import QwenV1Reference
from tests.quantization.checkpoints import write_quantized

PROMPTS = [[9707, 11, 1879, 0], list(range(1000, 1037))]


def test_qwen_v1_int4(tmp_path):
    dense = build_qwen_v1_checkpoint(str(tmp_path / "dense"), seed=2, no_bias=False)
    quantized, dequantized = write_quantized(dense, str(tmp_path), "gptq", bits=4, group_size=32)
    config = EngineArgs(model=quantized, trust_remote_code=True).resolve()
    model = load_model(quantized, config.hf_config, torch.float32, "cpu", config.max_model_len,
                       quant_config=config.quant_config)
    assert model.model.layers[0].self_attn.qkv_proj.qweight.shape == (64 // 8, 3 * 64)
    reference = QwenV1Reference(dequantized)
    ids = PROMPTS[1]
    with torch.inference_mode():
        got = model.compute_logits(model(torch.tensor(ids), torch.arange(len(ids))))
    torch.testing.assert_close(got, reference.logits(ids), rtol=1e-4, atol=1e-4)

    llm = LLM(quantized, trust_remote_code=True, max_num_batched_tokens=16, max_num_seqs=4)
    params = SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True)
    outs = llm.generate([{"prompt_token_ids": p} for p in PROMPTS], params, use_tqdm=False)
    assert [o.outputs[0].token_ids for o in outs] == [reference.greedy(p, 8) for p in PROMPTS]
