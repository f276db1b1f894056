"""Builds a model and fills its weights from a checkpoint: safetensors (sharded or not),
PyTorch .bin, or a GGUF file (ember.models.gguf_loading: dequantized to the model's dtype, or
kept in its blocks on the CPU in bf16); or random
weights at the model's shapes (load_format="dummy", for benchmarks without a download)."""
from __future__ import annotations

import glob
import logging
import os
import zipfile
from contextlib import nullcontext
from typing import Callable, Iterator

import torch

from ember.models.layers.kernels import layer_kernels
from ember.models.dummy_weights import draw_unsharded
from ember.models.gguf_loading import load_gguf_weights
from ember.models.hf_config import split_gguf
from ember.models.layers.linear import placeholder_weights
from ember.models.registry import model_class
from ember.quantization.gguf_cpu import keeps_gguf_blocks
from ember.quantization.layers import finish_quantized_loading, install_quantization

logger = logging.getLogger(__name__)


def iter_checkpoint(path: str, hf_config=None) -> Iterator[tuple[str, torch.Tensor]]:
    directory, _ = split_gguf(path)
    files = sorted(glob.glob(os.path.join(directory, "*.safetensors")))
    if files:
        from safetensors import safe_open

        for file in files:
            with safe_open(file, framework="pt") as f:
                for name in f.keys():
                    yield name, f.get_tensor(name)
        return
    files = sorted(f for f in glob.glob(os.path.join(directory, "*.bin")) if "training_args" not in f)
    if not files:
        raise FileNotFoundError(f"No *.safetensors, *.bin or .gguf weights found in {path}")
    for file in files:
        # weights_only: a checkpoint must never run code while loading. mmap: like safetensors,
        # a tensor's pages are read when a loader touches them, so a tensor-parallel rank reads
        # little more than its slice (the legacy non-zip format cannot be mapped).
        state = torch.load(file, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(file))
        yield from state.items()


def load_model(path: str, hf_config, dtype: torch.dtype, device: str, max_position: int,
               load_format: str = "auto", seed: int = 0, quant_config=None,
               attention_backend: str | None = None,
               on_built: Callable[[torch.nn.Module], None] | None = None) -> torch.nn.Module:
    """`quant_config` (ember.quantization): the checkpoint's quantized format, or None.
    `attention_backend`: "triton" or "torch" (None: the device's); the layers' kernels are
    chosen here, once. `on_built` sees the model built, before its weights load (the engine
    starts compiling its kernels then)."""
    cls = model_class(hf_config)
    gguf = split_gguf(path)[1] is not None and load_format != "dummy"
    keep_gguf_blocks = gguf and keeps_gguf_blocks(dtype, device)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device), placeholder_weights() if quant_config or keep_gguf_blocks else nullcontext():
            model = cls(hf_config, max_position, layer_kernels(device, attention_backend))
    finally:
        torch.set_default_dtype(previous)
    if quant_config is not None:
        install_quantization(model, quant_config, dtype, device)
    if on_built is not None:
        on_built(model)
    if load_format == "dummy":
        _random_weights(model, device, seed)
    else:
        loaded = load_gguf_weights(model, path, keep_gguf_blocks) if gguf else \
            model.load_weights(iter_checkpoint(path, hf_config))
        missing = sorted(n for n, p in model.named_parameters()
                         if n not in loaded and not getattr(p, "has_default", False))
        if missing:
            raise ValueError(f"checkpoint at {path} lacks weights for: {', '.join(missing[:8])}"
                             + (" ..." if len(missing) > 8 else ""))
    if quant_config is not None:
        finish_quantized_loading(model)
    return model.eval()


def _random_weights(model: torch.nn.Module, device: str, seed: int) -> None:
    generator = torch.Generator(device=device).manual_seed(seed)
    modules = dict(model.named_modules())
    for name, p in model.named_parameters():
        if getattr(p, "has_default", False):
            continue
        if p.dtype == torch.int32:  # packed integer codes: any bits are valid
            p.data.random_(generator=generator)
        elif p.dtype.itemsize == 1:  # fp8: no normal_ kernel, draw in fp32
            p.data.copy_(torch.empty(p.shape, device=device).normal_(0, 0.02, generator=generator))
        elif name.endswith("norm.weight"):
            p.data.fill_(1.0)
        else:
            module_name, _, attr = name.rpartition(".")
            draw_unsharded(modules[module_name], attr, p, generator)
