"""Puts a quantization format onto a built model: before loading, every linear layer the
checkpoint quantized gets its format's parameters and the rest (layers the checkpoint lists as
unconverted) their dense weight; the LM head is an embedding, never quantized. After loading, each quantized layer turns
its tensors into the layout its kernel reads."""
from __future__ import annotations

import torch
from torch import nn

from ember.models.layers.linear import Linear


def install_quantization(model: nn.Module, quant_config, dtype: torch.dtype, device) -> None:
    """`model` was built under placeholder_weights(): its Linear weights take no memory yet."""
    for name, layer in model.named_modules():
        if not isinstance(layer, Linear):
            continue
        if _left_unquantized(model, name, quant_config.exclusions):
            placeholder = layer.weight
            layer.weight = nn.Parameter(torch.empty(placeholder.shape, dtype=dtype, device=device),
                                        requires_grad=False)
            layer.weight.weight_loader = placeholder.weight_loader
            continue
        del layer.weight
        layer.quant_method = quant_config.linear_method(device)
        layer.quant_method.create_weights(layer, dtype, device)


def _left_unquantized(model: nn.Module, name: str, exclusions: tuple[str, ...]) -> bool:
    """Whether the checkpoint names this layer (or, for a fused layer, each of its parts) among
    the modules it did not quantize; the names are the checkpoint's, hence the parts."""
    parts = [name.replace(f".{fused}", f".{part}")
             for part, (fused, _) in getattr(model, "packed_modules", {}).items() if name.endswith(f".{fused}")]
    names = parts or [name]
    skipped = [any(excluded in n for excluded in exclusions) for n in names]
    if any(skipped) and not all(skipped):
        raise ValueError(f"the checkpoint quantizes only some parts of the fused layer {name}")
    return all(skipped)


def finish_quantized_loading(model: nn.Module) -> None:
    for layer in model.modules():
        if isinstance(layer, Linear) and layer.quant_method is not None:
            layer.quant_method.process_weights_after_loading(layer)
