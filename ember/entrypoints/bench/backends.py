"""The model under test, shared by both benchmarks: the model and engine flags, resolving
`--model` (a built-in shape, a directory, a hub id), and the two backends behind one
interface: `startup_seconds` and `generate(requests) -> seconds`."""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

import torch

from ember.entrypoints.bench.workloads import SHAPES, Request, check_output_lengths, shape_dir

DEFAULT_SHAPE = "qwen2.5-7b"
# Engine flags passed to LLM(...) only when given, so the engine's own defaults apply.
_ENGINE_FLAGS = ("max_model_len", "max_num_seqs", "max_num_batched_tokens", "gpu_memory_utilization",
                 "quantization", "kv_cache_dtype", "tensor_parallel_size")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=["ember", "hf"], default="ember",
                        help="ember, or transformers' own generation on the same requests.")
    parser.add_argument("--model", default=None,
                        help=f"Checkpoint directory or hub id; a directory with only config.json, or a "
                             f"built-in shape ({', '.join(SHAPES)}), with --random-weights. Default: the "
                             f"workload's shape, else {DEFAULT_SHAPE}.")
    parser.add_argument("--tokenizer", default=None, help="Tokenizer for --dataset (default: the model's).")
    parser.add_argument("--random-weights", action="store_true",
                        help="Random weights at the model's shapes: only its config.json is read.")
    parser.add_argument("--dtype", default="auto", choices=["auto", "half", "float16", "bfloat16", "float", "float32"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available).")
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.add_argument("--max-model-len", type=int, default=None)
    parser.add_argument("--max-num-seqs", type=int, default=None)
    parser.add_argument("--max-num-batched-tokens", type=int, default=None)
    parser.add_argument("--gpu-memory-utilization", type=float, default=None)
    parser.add_argument("--enforce-eager", action="store_true", help="Ember: no CUDA graphs.")
    parser.add_argument("--quantization", "-q", default=None, help="Ember: gptq, awq or fp8 (default: from the checkpoint).")
    parser.add_argument("--kv-cache-dtype", default=None, help="Ember: auto, fp8, fp8_e5m2 or fp8_e4m3.")
    parser.add_argument("--tensor-parallel-size", "-tp", type=int, default=None, help="Ember: GPUs to split the model over.")
    parser.add_argument("--output-json", default=None, help="Write the results to this JSON file.")


@dataclass
class ModelSpec:
    name: str            # as the user gave it
    path: str            # local directory (or GGUF file) both backends read
    random_weights: bool
    vocab_size: int


def resolve_model(args: argparse.Namespace, default_shape: str | None = None) -> ModelSpec:
    """A built-in shape always means random weights: it has no checkpoint to load."""
    from ember.models.hf_config import load_hf_config
    from ember.models.source import resolve_model as local_path

    name = args.model or default_shape or DEFAULT_SHAPE
    if name in SHAPES:
        path, random_weights = shape_dir(name), True
    else:
        path, random_weights = local_path(name), args.random_weights
    config = load_hf_config(path)
    vocab = getattr(config, "vocab_size", None) or config.get_text_config().vocab_size
    return ModelSpec(name, path, random_weights, vocab)


def device_of(args: argparse.Namespace) -> str:
    return args.device or ("cuda" if torch.cuda.is_available() else "cpu")


class EmberBackend:
    name = "ember"

    def __init__(self, args: argparse.Namespace, spec: ModelSpec):
        from ember import LLM

        engine = {flag: getattr(args, flag) for flag in _ENGINE_FLAGS if getattr(args, flag) is not None}
        self.llm = LLM(spec.path, tokenizer=args.tokenizer, dtype=args.dtype, seed=args.seed,
                       enforce_eager=args.enforce_eager, trust_remote_code=args.trust_remote_code,
                       device=args.device, load_format="dummy" if spec.random_weights else "auto",
                       # Random weights emit meaningless ids: no tokenizer, no detokenizing.
                       skip_tokenizer_init=spec.random_weights, **engine)
        self.startup_seconds = self.llm.llm_engine.startup_seconds
        self.dtype = self.llm.llm_engine.config.torch_dtype

    def generate(self, requests: list[Request], progress: bool = True) -> float:
        from ember import SamplingParams

        prompts = [{"prompt_token_ids": p} for p, _ in requests]
        params = [SamplingParams(temperature=1.0, top_p=1.0, ignore_eos=True, max_tokens=o) for _, o in requests]
        start = time.perf_counter()
        outputs = self.llm.generate(prompts, params, use_tqdm=progress)
        elapsed = time.perf_counter() - start
        check_output_lengths(requests, [len(o.outputs[0].token_ids) for o in outputs])
        return elapsed


def load_backend(args: argparse.Namespace, spec: ModelSpec, hf_max_batch_size: int, hf_continuous: bool = False):
    if args.backend == "ember":
        return EmberBackend(args, spec)
    from ember.engine_args import EngineArgs
    from ember.entrypoints.bench.hf_backend import HFBackend

    device = device_of(args)
    # The dtype Ember would pick for the same flags, so both sides compute alike.
    dtype = EngineArgs(model=spec.path, dtype=args.dtype, device=device).resolve().torch_dtype
    return HFBackend(spec.path, dtype, device, spec.random_weights, args.seed, args.trust_remote_code,
                     hf_max_batch_size, hf_continuous)


def run_info(args: argparse.Namespace, spec: ModelSpec, backend) -> dict:
    """What a results file needs to be compared later: what ran, where, and how long startup took."""
    import transformers

    device = device_of(args)
    info = {"backend": backend.name, "model": spec.name, "random_weights": spec.random_weights,
            "dtype": str(backend.dtype).removeprefix("torch."), "device": device,
            "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
            "startup_seconds": backend.startup_seconds, "torch": torch.__version__,
            "transformers": transformers.__version__}
    if backend.name == "hf" and backend.continuous:
        info.update(hf_mode="continuous", hf_warmup_seconds=backend.warmup_seconds)
    elif backend.name == "hf":
        info.update(hf_mode="static", hf_max_batch_size=backend.max_batch_size)
    return info


def write_results(path: str | None, results: dict) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=2)
