"""dtype "auto": the checkpoint's dtype on a GPU (fp32 checkpoints run in bf16), fp16 where
the GPU's compute capability is below 8.0 (bf16 asked for explicitly is refused there), fp32 on
the CPU unless asked. The GPU is mocked: only its compute capability matters."""
import json

import pytest
import torch

from ember.engine_args import EngineArgs
from tests.models.qwen_v1_checkpoint import qwen_v1_config


def config_dir(tmp_path, checkpoint_dtype: str | None) -> str:
    """A Qwen v1 config.json (read without transformers knowing the model type)."""
    config = qwen_v1_config()
    config.pop("torch_dtype")
    if checkpoint_dtype is not None:
        config["torch_dtype"] = checkpoint_dtype
    (tmp_path / "config.json").write_text(json.dumps(config))
    return str(tmp_path)


@pytest.fixture
def gpu_capability(monkeypatch):
    def set_capability(major: int):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (major, 0))
    return set_capability


@pytest.mark.parametrize("checkpoint, major, requested, expected", [
    ("bfloat16", 8, "auto", torch.bfloat16), ("bfloat16", 7, "auto", torch.float16),
    ("float16", 8, "auto", torch.float16), ("float16", 7, "auto", torch.float16),
    ("float32", 9, "auto", torch.bfloat16), ("float32", 7, "auto", torch.float16),
    (None, 8, "auto", torch.bfloat16), (None, 6, "auto", torch.float16),
    ("bfloat16", 7, "float16", torch.float16), ("bfloat16", 7, "float32", torch.float32),
    ("float16", 8, "bfloat16", torch.bfloat16)])
def test_gpu(tmp_path, gpu_capability, checkpoint, major, requested, expected):
    gpu_capability(major)
    config = EngineArgs(model=config_dir(tmp_path, checkpoint), device="cuda", dtype=requested).resolve()
    assert config.torch_dtype == expected


def test_bf16_refused_below_compute_capability_8(tmp_path, gpu_capability):
    gpu_capability(7)
    with pytest.raises(ValueError, match="compute capability >= 8.0.*float16"):
        EngineArgs(model=config_dir(tmp_path, "bfloat16"), device="cuda", dtype="bfloat16").resolve()


@pytest.mark.parametrize("requested, expected", [("auto", torch.float32), ("bfloat16", torch.bfloat16),
                                                 ("half", torch.float16)])
def test_cpu(tmp_path, requested, expected):
    config = EngineArgs(model=config_dir(tmp_path, "bfloat16"), device="cpu", dtype=requested).resolve()
    assert config.torch_dtype == expected
