"""Which quantization a checkpoint uses, with what settings, and the KV cache's storage dtype.

The checkpoint says it in config.json's `quantization_config` (or, for older exports, in
auto-gptq's quantize_config.json / AutoAWQ's quant_config.json beside it). `quantization=` /
--quantization may name the same method (a check) or be left out (detection); naming another
is an error, since the tensors on disk are what they are."""
from __future__ import annotations

import json
import os

import torch

from ember.quantization.awq import AWQConfig
from ember.quantization.fp8 import FP8Config
from ember.quantization.gptq import GPTQConfig

FORMATS = {"gptq": GPTQConfig, "awq": AWQConfig, "fp8": FP8Config}
# vLLM's names for the same formats run by other kernels; Ember has one kernel per format.
_ALIASES = {"gptq_marlin": "gptq", "awq_marlin": "awq"}
_SIDE_FILES = {"quantize_config.json": "gptq", "quant_config.json": "awq"}
# Random weights (load_format="dummy", benchmarks) have no checkpoint to read settings from.
_DUMMY_SETTINGS = {"gptq": {"bits": 4, "group_size": 128}, "awq": {"group_size": 128}, "fp8": {}}

KV_CACHE_DTYPES = {"fp8": torch.float8_e4m3fn, "fp8_e4m3": torch.float8_e4m3fn,
                   "fp8_e5m2": torch.float8_e5m2}


def checkpoint_quantization(hf_config, model_dir: str) -> dict | None:
    found = getattr(hf_config, "quantization_config", None)
    if found:
        return dict(found if isinstance(found, dict) else found.to_dict())
    for file, method in _SIDE_FILES.items():
        path = os.path.join(model_dir, file)
        if os.path.isfile(path):
            with open(path) as f:
                return {"quant_method": method, **json.load(f)}
    return None


def resolve_quantization(requested: str | None, hf_config, model_dir: str, load_format: str):
    """The checkpoint's quantization settings (GPTQConfig, AWQConfig, FP8Config) or None."""
    name = _ALIASES.get(requested, requested)
    if name is not None and name not in FORMATS:
        raise ValueError(f"quantization={requested!r} is not supported; Ember runs {', '.join(FORMATS)}.")
    found = checkpoint_quantization(hf_config, model_dir)
    if found is None:
        if name is None:
            return None
        if load_format != "dummy":
            raise ValueError(f"quantization={requested!r}, but {model_dir} has no quantization_config in "
                             "config.json (nor quantize_config.json / quant_config.json): Ember runs "
                             "checkpoints quantized ahead of time, not quantizing at load.")
        found = {"quant_method": name, **_DUMMY_SETTINGS[name]}
    method = str(found.get("quant_method", "")).lower()
    if method not in FORMATS:
        raise ValueError(f"the checkpoint's quantization_config has quant_method {method!r}; Ember runs "
                         f"{', '.join(FORMATS)}.")
    if name is not None and name != method:
        raise ValueError(f"quantization={requested!r} does not match the checkpoint, whose "
                         f"quantization_config says quant_method {method!r}: leave the option out "
                         f"or pass {method!r}.")
    return FORMATS[method].from_dict(found)


def kv_cache_torch_dtype(kv_cache_dtype: str, model_dtype: torch.dtype) -> torch.dtype:
    if kv_cache_dtype == "auto":
        return model_dtype
    if kv_cache_dtype not in KV_CACHE_DTYPES:
        raise ValueError(f"kv_cache_dtype must be one of auto, {', '.join(KV_CACHE_DTYPES)}; "
                         f"got {kv_cache_dtype!r}.")
    return KV_CACHE_DTYPES[kv_cache_dtype]


def check_fp8_support(quant_config, kv_dtype: torch.dtype, device: str) -> None:
    """Triton converts e4m3 (fp8 weights, the e4m3 KV cache) on compute capability >= 8.9 only."""
    uses_e4m3 = isinstance(quant_config, FP8Config) or kv_dtype == torch.float8_e4m3fn
    if uses_e4m3 and device.startswith("cuda") and \
            torch.cuda.get_device_capability(torch.device(device)) < (8, 9):
        raise ValueError("FP8 (e4m3) weights and kv_cache_dtype fp8/fp8_e4m3 need a GPU of compute "
                         "capability >= 8.9 (Ada, Hopper); use kv_cache_dtype='fp8_e5m2' or another "
                         "checkpoint.")
