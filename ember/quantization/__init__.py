"""Quantized checkpoints: GPTQ and AWQ (int4/int8 weights), FP8 (per-tensor and block-wise),
and the 8-bit KV cache dtypes. See docs/quantization.md."""
