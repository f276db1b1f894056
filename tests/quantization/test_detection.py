"""Detection from the checkpoint, `quantization=` as a check, clear errors, and kv_cache_dtype."""
import json
import os

import pytest
import torch

from ember.engine_args import EngineArgs
from ember.quantization.awq import AWQConfig
from ember.quantization.fp8 import FP8Config
from ember.quantization.gptq import GPTQConfig
from tests.quantization.checkpoints import write_quantized


@pytest.fixture(scope="module")
def gptq_dir(dense_checkpoint, tmp_path_factory):
    return write_quantized(dense_checkpoint("llama"), str(tmp_path_factory.mktemp("gptq")), "gptq",
                           bits=4, group_size=32)[0]


def test_detected_from_config_json(gptq_dir):
    config = EngineArgs(model=gptq_dir).resolve()
    assert config.quant_config == GPTQConfig(bits=4, group_size=32, zero_offset=1)


@pytest.mark.parametrize("name", ["gptq", "gptq_marlin"])
def test_matching_option_is_accepted(gptq_dir, name):
    assert isinstance(EngineArgs(model=gptq_dir, quantization=name).resolve().quant_config, GPTQConfig)


def test_mismatch_is_a_clear_error(gptq_dir):
    with pytest.raises(ValueError, match="quantization='awq' does not match the checkpoint.*'gptq'"):
        EngineArgs(model=gptq_dir, quantization="awq").resolve()


def test_unknown_method(gptq_dir):
    with pytest.raises(ValueError, match="quantization='squeezellm' is not supported"):
        EngineArgs(model=gptq_dir, quantization="squeezellm").resolve()


def test_option_without_quantized_checkpoint(dense_checkpoint):
    with pytest.raises(ValueError, match="has no quantization_config"):
        EngineArgs(model=dense_checkpoint("llama"), quantization="fp8").resolve()
    # Random weights (benchmarks) take the format's usual settings instead.
    config = EngineArgs(model=dense_checkpoint("llama"), quantization="awq", load_format="dummy").resolve()
    assert config.quant_config == AWQConfig(group_size=128)


def _variant(src: str, tmp_path, quantization_config: dict | None, side_file: tuple[str, dict] | None = None):
    """`src` with config.json's quantization_config replaced (None: removed), plus a side file."""
    directory = tmp_path / "variant"
    directory.mkdir()
    for name in os.listdir(src):
        if name != "config.json":
            os.symlink(os.path.join(src, name), directory / name)
    with open(os.path.join(src, "config.json")) as f:
        config = json.load(f)
    config.pop("quantization_config")
    if quantization_config is not None:
        config["quantization_config"] = quantization_config
    (directory / "config.json").write_text(json.dumps(config))
    if side_file is not None:
        (directory / side_file[0]).write_text(json.dumps(side_file[1]))
    return str(directory)


def test_auto_gptq_quantize_config_json(gptq_dir, tmp_path):
    directory = _variant(gptq_dir, tmp_path, None, ("quantize_config.json",
                                                    {"bits": 8, "group_size": -1, "desc_act": True, "sym": False}))
    assert EngineArgs(model=directory).resolve().quant_config == GPTQConfig(bits=8, group_size=-1, zero_offset=1)


def test_autoawq_quant_config_json_old_keys(gptq_dir, tmp_path):
    old_keys = {"zero_point": True, "q_group_size": 64, "w_bit": 4, "version": "GEMM"}
    directory = _variant(gptq_dir, tmp_path, None, ("quant_config.json", old_keys))
    assert EngineArgs(model=directory).resolve().quant_config == AWQConfig(group_size=64)


@pytest.mark.parametrize("settings, message", [
    ({"quant_method": "gptq", "bits": 3}, "bits=3"),
    ({"quant_method": "awq", "version": "gemv"}, "version 'gemv'"),
    ({"quant_method": "fp8", "weight_block_size": [128]}, "weight_block_size"),
    ({"quant_method": "bitsandbytes"}, "quant_method 'bitsandbytes'"),
])
def test_unsupported_settings(gptq_dir, tmp_path, settings, message):
    with pytest.raises(ValueError, match=message):
        EngineArgs(model=_variant(gptq_dir, tmp_path, settings)).resolve()


def test_fp8_block_settings():
    config = FP8Config.from_dict({"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                                  "weight_block_size": [128, 128]})
    assert config == FP8Config(block_size=(128, 128), static_activations=False)


@pytest.mark.parametrize("name, dtype", [("auto", torch.float32), ("fp8", torch.float8_e4m3fn),
                                         ("fp8_e4m3", torch.float8_e4m3fn), ("fp8_e5m2", torch.float8_e5m2)])
def test_kv_cache_dtype(dense_checkpoint, name, dtype):
    assert EngineArgs(model=dense_checkpoint("llama"), kv_cache_dtype=name).resolve().kv_cache_torch_dtype == dtype


def test_kv_cache_dtype_unknown(dense_checkpoint):
    with pytest.raises(ValueError, match="kv_cache_dtype must be one of auto, fp8, fp8_e4m3, fp8_e5m2"):
        EngineArgs(model=dense_checkpoint("llama"), kv_cache_dtype="int8").resolve()
