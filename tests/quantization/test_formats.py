"""Each checkpoint format, packed from a tiny random model: Ember's logits equal those of the
dequantized twin run by transformers (fp32: the same weights, so only float rounding
differs), its greedy tokens equal transformers' on that twin, and the quantization error
against the original dense model is what the format allows."""
import pytest
import torch
from transformers import AutoModelForCausalLM

from ember import LLM, SamplingParams
from ember.engine_args import EngineArgs
from ember.models.loader import load_model
from tests.quantization.checkpoints import write_quantized
from tests.tiny_models import hf_greedy

PROMPTS = [[9707, 11, 1879, 0], list(range(1000, 1037)), [3, 4, 5]]
MAX_NEW = 8

# (family, format, packer settings, bound on the logit error against the dense original: loose,
# it shows the packer quantized (error > 0) and not garbage; logits reach about 4).
CASES = {
    "gptq-int4-qwen2": ("qwen2", "gptq", dict(bits=4, group_size=32), 3.0),
    "gptq-int8-actorder-asym-llama": ("llama", "gptq", dict(bits=8, group_size=-1, desc_act=True, sym=False), 0.2),
    "gptq_v2-int4-actorder-qwen3": ("qwen3", "gptq", dict(bits=4, group_size=64, desc_act=True, sym=False,
                                                          checkpoint_format="gptq_v2"), 3.0),
    "awq-qwen2": ("qwen2", "awq", dict(group_size=32), 3.0),
    "awq-qwen3": ("qwen3", "awq", dict(group_size=64), 3.0),
    "fp8-static-llama": ("llama", "fp8", dict(input_scale=0.05), 1.0),
    "fp8-ignored-layers-llama": ("llama", "fp8", dict(keep_dense=("model.layers.1.mlp.",)), 1.0),
    "awq-unconverted-modules-qwen2": ("qwen2", "awq", dict(group_size=32, keep_dense=("self_attn",)), 3.0),
    "fp8-block128-qwen3": ("qwen3", "fp8_block", dict(block=(128, 128)), 1.0),
    # Blocks of 48 rows: q (128 rows) and k, v (64) each end in a partial block of their own.
    "fp8-block48x32-qwen3": ("qwen3", "fp8_block", dict(block=(48, 32)), 1.0),
}


def _ember_logits(directory: str, ids: list[int]) -> torch.Tensor:
    config = EngineArgs(model=directory).resolve()
    model = load_model(directory, config.hf_config, torch.float32, "cpu", config.max_model_len,
                       quant_config=config.quant_config)
    with torch.inference_mode():
        return model.compute_logits(model(torch.tensor(ids), torch.arange(len(ids))))


def _hf_logits(directory: str, ids: list[int]) -> torch.Tensor:
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    with torch.inference_mode():
        return model(torch.tensor([ids])).logits[0]


@pytest.mark.parametrize("case", list(CASES))
def test_format(case, dense_checkpoint, tmp_path):
    family, fmt, settings, max_quant_error = CASES[case]
    dense = dense_checkpoint(family)
    quantized, dequantized = write_quantized(dense, str(tmp_path), fmt, **settings)
    ids = PROMPTS[1]

    got, twin = _ember_logits(quantized, ids), _hf_logits(dequantized, ids)
    torch.testing.assert_close(got, twin, rtol=1e-4, atol=1e-4)
    quant_error = (twin - _hf_logits(dense, ids)).abs().max()
    assert 0 < quant_error < max_quant_error

    llm = LLM(quantized, max_num_batched_tokens=16, max_num_seqs=4)  # chunked prefill too
    params = SamplingParams(temperature=0.0, max_tokens=MAX_NEW, ignore_eos=True)
    outs = llm.generate([{"prompt_token_ids": p} for p in PROMPTS], params, use_tqdm=False)
    assert [o.outputs[0].token_ids for o in outs] == hf_greedy(dequantized, PROMPTS, MAX_NEW)


def test_quantized_layers_keep_packed_tensors(dense_checkpoint, tmp_path):
    """No dense copy of a quantized layer's weight exists after loading; the LM head stays dense."""
    quantized, _ = write_quantized(dense_checkpoint("qwen2"), str(tmp_path), "gptq", bits=4, group_size=32)
    config = EngineArgs(model=quantized).resolve()
    model = load_model(quantized, config.hf_config, torch.float32, "cpu", 64, quant_config=config.quant_config)
    qkv = model.model.layers[0].self_attn.qkv_proj
    assert not hasattr(qkv, "weight") and qkv.qweight.dtype == torch.int32
    assert qkv.qweight.shape == (64 // 8, 64 + 32 + 32)
    assert model.lm_head.weight.dtype == torch.float32


@pytest.mark.parametrize("quantization", ["gptq", "awq", "fp8"])
def test_random_weights_at_quantized_shapes(dense_checkpoint, quantization):
    """load_format="dummy" (benchmarks without a download) fills packed codes with random bits
    and leaves GPTQ's sequential g_idx valid."""
    llm = LLM(dense_checkpoint("qwen2"), quantization=quantization, load_format="dummy")
    params = SamplingParams(temperature=0.0, max_tokens=4, ignore_eos=True)
    out = llm.generate([{"prompt_token_ids": PROMPTS[0]}], params, use_tqdm=False)[0]
    assert len(out.outputs[0].token_ids) == 4
