"""Context length and rope scaling: max_model_len defaults to max_position_embeddings and is
validated against it (times a static scaling factor); YaRN, linear, dynamic NTK and Llama-3
scaling from config.json (transformers 4.x layout, as checkpoints ship it) or from
--rope-scaling give transformers' logits at positions far past the original window.

Dynamic NTK is static in Ember, as in vLLM: the base is computed once for the longest context
(max_position_embeddings x factor), where transformers recomputes it for the current length
each forward; it is checked against plain rope with that static base."""
import json
import os

import pytest
import torch

from ember import LLM, SamplingParams
from ember.engine_args import EngineArgs
from ember.models.loader import load_model
from tests.tiny_models import build_tiny_checkpoint

WINDOW = 64  # the tiny model's original context
THETA = 1000000.0
PROMPT = [(i * 7919) % 49000 + 3 for i in range(170)]  # positions up to 169, far past 64
SCALINGS = {
    "yarn": ({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": WINDOW}, WINDOW),
    "linear": ({"rope_type": "linear", "factor": 4.0}, WINDOW),
    "dynamic": ({"rope_type": "dynamic", "factor": 4.0}, WINDOW),
    # Llama 3.1 style: max_position_embeddings already holds the long context.
    "llama3": ({"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": WINDOW}, 4 * WINDOW),
}


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> str:
    return build_tiny_checkpoint(str(tmp_path_factory.mktemp("qwen2_rope")), "qwen2",
                                 max_position_embeddings=WINDOW, rope_theta=THETA)


def checkpoint_with(base: str, directory, rope_scaling: dict | None, max_position: int) -> str:
    """`base`'s files with config.json rewritten in the 4.x layout (rope_theta, rope_scaling)."""
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(base):
        if name != "config.json":
            os.symlink(os.path.join(base, name), os.path.join(directory, name))
    with open(os.path.join(base, "config.json")) as f:
        config = json.load(f)
    config.pop("rope_parameters", None)
    config.update(rope_theta=THETA, max_position_embeddings=max_position)
    if rope_scaling is not None:
        config["rope_scaling"] = rope_scaling
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)
    return str(directory)


def transformers_model(directory: str, rope_parameters: dict | None = None):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(directory)
    if rope_parameters is not None:
        config.rope_parameters = rope_parameters
    return AutoModelForCausalLM.from_pretrained(directory, config=config, dtype=torch.float32).eval()


def static_ntk_theta(factor: float, head_dim: int) -> float:
    """vLLM's dynamic NTK base, fixed at max_position_embeddings x factor."""
    return THETA * (factor * factor - factor + 1) ** (head_dim / (head_dim - 2))


@pytest.mark.parametrize("kind", list(SCALINGS))
def test_logits_equal_transformers_past_the_original_window(base_dir, tmp_path, kind):
    scaling, max_position = SCALINGS[kind]
    directory = checkpoint_with(base_dir, tmp_path / kind, scaling, max_position)
    config = EngineArgs(model=directory).resolve()
    assert config.max_model_len == 4 * WINDOW
    model = load_model(directory, config.hf_config, torch.float32, "cpu", config.max_model_len)
    if kind == "dynamic":
        head_dim = config.hf_config.hidden_size // config.hf_config.num_attention_heads
        expected_model = transformers_model(directory, {"rope_type": "default",
                                                        "rope_theta": static_ntk_theta(4.0, head_dim)})
    else:
        expected_model = transformers_model(directory)
    ids = torch.tensor(PROMPT)
    with torch.no_grad():
        expected = expected_model(ids[None]).logits[0]
        got = model.compute_logits(model(ids, torch.arange(len(PROMPT))))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_rope_scaling_flag_yarn_engine_greedy(base_dir, tmp_path):
    """The seed's `--rope-scaling '{"type":"yarn",...}' --max-model-len` on an unscaled checkpoint."""
    directory = checkpoint_with(base_dir, tmp_path / "plain", None, WINDOW)
    scaling = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": WINDOW}
    # A 64-token budget also splits the prompt into chunks.
    llm = LLM(directory, rope_scaling=scaling, max_model_len=4 * WINDOW, max_num_batched_tokens=64,
              max_num_seqs=4)
    params = SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True)
    out = llm.generate({"prompt_token_ids": PROMPT}, params, use_tqdm=False)[0].outputs[0].token_ids
    reference = transformers_model(directory, {**scaling, "rope_type": "yarn", "rope_theta": THETA})
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        expected = reference.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                      max_new_tokens=8, eos_token_id=None, pad_token_id=0)
    assert out == expected[0, len(PROMPT):].tolist()


def test_max_model_len_default_and_validation(base_dir, tmp_path):
    plain = checkpoint_with(base_dir, tmp_path / "plain", None, WINDOW)
    assert EngineArgs(model=plain).resolve().max_model_len == WINDOW
    with pytest.raises(ValueError, match="max_model_len"):
        EngineArgs(model=plain, max_model_len=WINDOW + 1).resolve()
    yarn = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": WINDOW}
    assert EngineArgs(model=plain, rope_scaling=yarn).resolve().max_model_len == 4 * WINDOW
    with pytest.raises(ValueError, match="max_model_len"):
        EngineArgs(model=plain, rope_scaling=yarn, max_model_len=4 * WINDOW + 1).resolve()


def test_qwen3_context_is_40960(tmp_path):
    from transformers import Qwen3Config

    Qwen3Config(max_position_embeddings=40960, num_hidden_layers=1).save_pretrained(tmp_path)
    assert EngineArgs(model=str(tmp_path)).resolve().max_model_len == 40960
    assert EngineArgs(model=str(tmp_path), max_model_len=32768).resolve().max_model_len == 32768
    with pytest.raises(ValueError, match="40960"):
        EngineArgs(model=str(tmp_path), max_model_len=40961).resolve()
