"""A quantized checkpoint and its dequantized twin from one dense checkpoint: every linear
layer of the decoder blocks is quantized by a packer of tests/quantization/packers.py; the
twin holds exactly the weights the quantized tensors encode, as an ordinary fp32 checkpoint."""
from __future__ import annotations

import json
import os
import shutil

import torch
from safetensors.torch import load_file, save_file

from tests.quantization import packers

# Each format: the packer and the config.json entry a real export writes.
FORMATS = {
    "gptq": (packers.gptq, lambda s: {"quant_method": "gptq", "bits": s.get("bits", 4),
                                      "group_size": s.get("group_size", 128), "desc_act": s.get("desc_act", False),
                                      "sym": s.get("sym", True), "damp_percent": 0.01, "true_sequential": True,
                                      "static_groups": False, "model_name_or_path": None,
                                      "model_file_base_name": "model",
                                      "checkpoint_format": s.get("checkpoint_format", "gptq")}),
    "awq": (packers.awq, lambda s: {"quant_method": "awq", "bits": 4, "group_size": s.get("group_size", 128),
                                    "zero_point": True, "version": "gemm", "modules_to_not_convert": None}),
    "fp8": (packers.fp8_per_tensor, lambda s: {"quant_method": "fp8", "ignored_layers": ["lm_head"],
                                               "activation_scheme": "static" if s.get("input_scale") else "dynamic"}),
    "fp8_block": (packers.fp8_block, lambda s: {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                                                "weight_block_size": list(s.get("block", (128, 128)))}),
}


# Where each format lists the modules it left unquantized.
_EXCLUSIONS_KEY = {"awq": "modules_to_not_convert", "fp8": "ignored_layers", "fp8_block": "modules_to_not_convert"}


def _is_block_linear(name: str, tensor: torch.Tensor) -> bool:
    return tensor.dim() == 2 and name.endswith(".weight") and (".layers." in name or ".h." in name)


def write_quantized(src: str, dst: str, fmt: str, keep_dense: tuple[str, ...] = (),
                    **settings) -> tuple[str, str]:
    """(quantized checkpoint dir, dequantized twin dir) under `dst`; layers whose names contain
    an entry of `keep_dense` stay dense and are listed as such in the quantization config."""
    pack, make_config = FORMATS[fmt]
    quant_config = make_config(settings)
    if keep_dense:
        key = _EXCLUSIONS_KEY[fmt]
        quant_config[key] = (quant_config.get(key) or []) + list(keep_dense)
    weights = load_file(os.path.join(src, "model.safetensors"))
    quantized, dequantized = {}, {}
    for name, tensor in weights.items():
        if _is_block_linear(name, tensor) and not any(k in name for k in keep_dense):
            prefix = name[:-len("weight")]
            tensors, dense = pack(tensor.float(), **settings)
            quantized |= {prefix + key: value for key, value in tensors.items()}
            dequantized[name] = dense
        else:
            # GPTQ and AWQ exports keep biases in fp16; the twin holds the same rounded values.
            quantized[name] = tensor.half() if fmt in ("gptq", "awq") and name.endswith(".bias") else tensor
            dequantized[name] = quantized[name].to(tensor.dtype)
    with open(os.path.join(src, "config.json")) as f:
        config = json.load(f)
    dirs = os.path.join(dst, "quantized"), os.path.join(dst, "dequantized")
    for directory, tensors, extra in ((dirs[0], quantized, {"quantization_config": quant_config}),
                                      (dirs[1], dequantized, {})):
        shutil.copytree(src, directory, ignore=shutil.ignore_patterns("*.safetensors", "config.json"))
        with open(os.path.join(directory, "config.json"), "w") as f:
            json.dump({**config, **extra}, f, indent=2)
        save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(directory, "model.safetensors"))
    return dirs
