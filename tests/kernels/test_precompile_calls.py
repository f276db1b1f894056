"""The cold-start children's kernel calls (ember/worker/precompile.py) run: every call lays out
its tensors as the model's decode step does (run here through Triton's interpreter)."""
import pytest
import torch

from ember.models.layers.kernels import TRITON
from ember.models.llama import LlamaForCausalLM
from ember.models.qwen3 import Qwen3ForCausalLM
from ember.worker.precompile import kernel_calls, model_spec
from tests.tiny_models import tiny_config


@pytest.mark.parametrize("family,cls", [("qwen3", Qwen3ForCausalLM), ("qwen2", LlamaForCausalLM)])
def test_every_precompile_call_runs(device, family, cls):
    model = cls(tiny_config(family, vocab_size=64), 1024, TRITON)
    spec = model_spec(model, torch.device(device), torch.float32, torch.float32, 16, 8, [512, 1024], [16, 512])
    assert spec is not None and spec["qk_norm"] == (family == "qwen3")
    calls = kernel_calls(spec)
    assert len(calls) == 9
    for call in calls:
        call()


@pytest.mark.parametrize("count", [1, 2, 5])
def test_children_and_the_engine_process_share_the_calls_once_each(count):
    from ember.worker.precompile import _IN_PROCESS, child_share

    calls = list(range(9))
    shares = [child_share(calls, i, count) for i in range(count)]
    assert sorted(sum(shares, []) + calls[-_IN_PROCESS:]) == calls
    assert max(len(s) for s in shares) == -(-(len(calls) - _IN_PROCESS) // count)  # five children: one call each


def test_no_children_for_the_torch_kernels():
    from ember.models.layers.kernels import TORCH

    model = Qwen3ForCausalLM(tiny_config("qwen3", vocab_size=64), 1024, TORCH)
    assert model_spec(model, torch.device("cpu"), torch.float32, torch.float32, 16, 8, [512], [16, 512]) is None


def test_a_successful_precompile_is_not_repeated(device, tmp_path, monkeypatch):
    """The children and this process compile once (on a GPU, or through Triton's interpreter on a
    CPU, where the conftest switched it on for the whole process: kernels imported compiled for
    the GPU cannot take a CPU spec); once all succeeded, the next start finds the marker in
    Triton's cache directory and starts none."""
    from ember.worker import precompile
    from ember.worker.precompile import Precompiler, marker_path

    # The engine stops children after 15 s; this test is about the marker, not the clock (a busy
    # machine may take them longer).
    monkeypatch.setattr(precompile, "_WAIT_S", 300.0)
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))
    model = Qwen3ForCausalLM(tiny_config("qwen3", vocab_size=64), 1024, TRITON)
    spec = model_spec(model, torch.device(device), torch.float32, torch.float32, 16, 8, [512, 1024], [16, 512])
    assert marker_path(spec).startswith(str(tmp_path))
    first = Precompiler.launch(spec)
    assert first is not None
    first.wait()
    assert Precompiler.launch(spec) is None
    other = Precompiler.launch(dict(spec, max_num_seqs=16))  # another engine's kernels
    assert other is not None
    other.wait()
