"""Model sources, offline: a local path wins; a hub id resolves from a pre-populated Hugging
Face cache (cache_dir or HF_HOME, revisions, HF_HUB_OFFLINE); ModelScope is chosen by
EMBER_USE_MODELSCOPE / VLLM_USE_MODELSCOPE, with its one network call replaced here."""
import fnmatch
import os
import subprocess
import sys

import huggingface_hub
import pytest

from ember import LLM, SamplingParams
from ember.models import source

REPO = "Qwen/Qwen-7B-Chat"
MAIN, V1 = "a" * 40, "b" * 40


def hub_cache(cache_dir, checkpoint: str) -> dict[str, str]:
    """The hub cache layout: models--org--name/{refs/<ref>, snapshots/<commit>/<files>}, files
    linked to `checkpoint`'s as the hub links them to blobs. Returns {ref: snapshot dir}."""
    repo = os.path.join(cache_dir, "models--" + REPO.replace("/", "--"))
    snapshots = {}
    for ref, commit in (("main", MAIN), ("v1", V1)):
        os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
        with open(os.path.join(repo, "refs", ref), "w") as f:
            f.write(commit)
        snapshot = os.path.join(repo, "snapshots", commit)
        os.makedirs(snapshot)
        for name in os.listdir(checkpoint):
            os.symlink(os.path.join(checkpoint, name), os.path.join(snapshot, name))
        snapshots[ref] = snapshot
    return snapshots


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    for name in ("EMBER_USE_MODELSCOPE", "VLLM_USE_MODELSCOPE"):
        monkeypatch.delenv(name, raising=False)


def test_local_path_wins_over_any_hub(tmp_path, monkeypatch, offline):
    (tmp_path / "Qwen" / "Qwen-7B-Chat").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EMBER_USE_MODELSCOPE", "true")
    monkeypatch.setattr(source, "modelscope_snapshot", lambda *a: pytest.fail("ModelScope was asked"))
    assert source.resolve_model(REPO) == str(tmp_path / "Qwen" / "Qwen-7B-Chat")


def test_hub_id_from_download_dir_and_revisions(tmp_path, offline, qwen_v1_dir):
    snapshots = hub_cache(tmp_path, qwen_v1_dir)
    assert source.resolve_model(REPO, download_dir=str(tmp_path)) == snapshots["main"]
    assert source.resolve_model(REPO, revision="v1", download_dir=str(tmp_path)) == snapshots["v1"]
    assert source.resolve_model(REPO, revision=V1, download_dir=str(tmp_path)) == snapshots["v1"]
    with pytest.raises(huggingface_hub.errors.LocalEntryNotFoundError):
        source.resolve_model("Qwen/Not-Cached", download_dir=str(tmp_path))
    llm = LLM(REPO, download_dir=str(tmp_path), revision="v1", trust_remote_code=True)
    assert llm.llm_engine.config.model_path == snapshots["v1"]
    out = llm.generate("你好", SamplingParams(max_tokens=3, ignore_eos=True), use_tqdm=False)
    assert len(out[0].outputs[0].token_ids) == 3


def test_hf_home_and_hf_hub_offline_in_a_fresh_process(tmp_path, qwen_v1_dir):
    snapshots = hub_cache(tmp_path / "home" / "hub", qwen_v1_dir)
    env = {**os.environ, "HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    code = f"from ember.models.source import resolve_model; print(resolve_model({REPO!r}))"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == snapshots["main"]


@pytest.mark.parametrize("env, expected", [
    ({}, False), ({"EMBER_USE_MODELSCOPE": "true"}, True), ({"EMBER_USE_MODELSCOPE": "True"}, True),
    ({"EMBER_USE_MODELSCOPE": "1"}, True), ({"VLLM_USE_MODELSCOPE": "true"}, True),
    ({"VLLM_USE_MODELSCOPE": "True"}, True), ({"VLLM_USE_MODELSCOPE": "1"}, True),
    ({"EMBER_USE_MODELSCOPE": "false", "VLLM_USE_MODELSCOPE": "true"}, False),  # Ember's own wins
    ({"VLLM_USE_MODELSCOPE": "0"}, False)])
def test_modelscope_switch(monkeypatch, offline, env, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert source.use_modelscope() is expected


def test_llm_loads_what_modelscope_returns(monkeypatch, offline, qwen_v1_dir, tmp_path):
    calls = []

    def fake_snapshot(model_id, revision, cache_dir, patterns):
        calls.append((model_id, revision, cache_dir, patterns))
        return qwen_v1_dir

    monkeypatch.setattr(source, "modelscope_snapshot", fake_snapshot)
    monkeypatch.setenv("VLLM_USE_MODELSCOPE", "True")
    llm = LLM("qwen/Qwen-7B-Chat", download_dir=str(tmp_path), trust_remote_code=True, max_model_len=128)
    assert calls[0] == ("qwen/Qwen-7B-Chat", "master", str(tmp_path), source.WANTED_FILES)
    assert llm.llm_engine.config.model_path == qwen_v1_dir
    out = llm.generate("你好", SamplingParams(max_tokens=3, ignore_eos=True), use_tqdm=False)
    assert len(out[0].outputs[0].token_ids) == 3


def test_only_loading_files_are_fetched():
    def wanted(name):
        return any(fnmatch.fnmatch(name, p) for p in source.WANTED_FILES)

    for name in ("config.json", "generation_config.json", "model-00001-of-00008.safetensors",
                 "model.safetensors.index.json", "pytorch_model.bin", "qwen.tiktoken",
                 "tokenizer.json", "tokenizer_config.json", "tokenizer.model", "merges.txt",
                 "vocab.json", "chat_template.jinja"):
        assert wanted(name), name
    for name in ("modeling_qwen.py", "tokenization_qwen.py", "cpp_kernels.py", "README.md",
                 "assets/logo.jpg", "cache_autogptq_cuda_256.cpp", "original/consolidated.00.pth"):
        assert not wanted(name), name
