"""Where a model's files come from: a local directory or GGUF file (always first), the Hugging
Face hub (through huggingface_hub, so HF_HOME, HF_HUB_CACHE and HF_HUB_OFFLINE apply; --download-dir
and --revision pass through), or ModelScope when EMBER_USE_MODELSCOPE (or vLLM's
VLLM_USE_MODELSCOPE) is true."""
from __future__ import annotations

import logging
import os

from ember.dependencies import require

logger = logging.getLogger(__name__)

# Only what loading needs: weights, configs, tokenizer files (tokenizer.json, merges/vocab .txt,
# sentencepiece .model, Qwen v1's .tiktoken) and chat templates. Never the checkpoint's *.py:
# Ember does not run checkpoint code.
WANTED_FILES = ["*.json", "*.safetensors", "*.bin", "*.model", "*.tiktoken", "*.txt", "*.jinja"]


def use_modelscope() -> bool:
    """EMBER_USE_MODELSCOPE when set, else VLLM_USE_MODELSCOPE: 1, true or yes, in any case."""
    flag = os.environ.get("EMBER_USE_MODELSCOPE", os.environ.get("VLLM_USE_MODELSCOPE", ""))
    return flag.strip().lower() in ("1", "true", "yes")


def resolve_model(model: str, revision: str | None = None, download_dir: str | None = None) -> str:
    """Return a local path for `model`. A path that exists always wins over any hub."""
    expanded = os.path.expanduser(model)
    if os.path.exists(expanded):
        return os.path.abspath(expanded)
    if use_modelscope():
        logger.info("Fetching %s from ModelScope", model)
        return modelscope_snapshot(model, revision or "master", download_dir, WANTED_FILES)
    return hf_hub_download(model, revision, download_dir)


def hf_hub_download(repo_id: str, revision: str | None, download_dir: str | None) -> str:
    from huggingface_hub import snapshot_download

    logger.info("Fetching %s from the Hugging Face hub (or its local cache)", repo_id)
    return snapshot_download(repo_id, revision=revision, cache_dir=download_dir, allow_patterns=WANTED_FILES)


def modelscope_snapshot(model_id: str, revision: str, cache_dir: str | None, patterns: list[str]) -> str:
    """The one call that reaches ModelScope (tests replace it): its local snapshot directory."""
    require("modelscope", "EMBER_USE_MODELSCOPE")
    from modelscope import snapshot_download

    return snapshot_download(model_id, revision=revision, cache_dir=cache_dir, allow_file_pattern=patterns)
