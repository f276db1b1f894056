"""Compile the decode step's Triton kernels ahead, in parallel, while the engine starts.

On a fresh machine Triton compiles every kernel variant on first use, one after another, and
most of them are first used while the CUDA graphs are captured (the decode attention, the fused
q/k prelude with its cache write, the sampler, the prefill graphs' attention). Triton's
compiler holds the GIL for much of its work, so threads do not overlap; processes do. A few
child processes each call some of those kernels on tiny tensors laid out as the model's (same
dtypes, head counts, strides, so the same specialisations) and exit; Triton's on-disk cache
then hands the engine the compiled kernels instead of compiling them again. Best effort: a
child that fails costs nothing but its own time, and the engine waits for the children (a
bounded while) only before it measures free GPU memory, which their CUDA contexts would
otherwise take from the KV cache. While it waits, the engine process compiles a share itself:
it is warm, where a child spends seconds starting before it compiles anything.

Once every child has succeeded, a marker in Triton's cache directory (named from the spec, the
kernels' sources and Triton's version) says so, and later starts skip the children, whose
start-up alone (an interpreter, torch, a CUDA context each) costs seconds even when every
kernel is already cached.

    python -m ember.worker.precompile SPEC_JSON INDEX COUNT   # one child: calls INDEX::COUNT of the
                                                              # children's share
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import subprocess
import sys
import time

import torch

import ember

logger = logging.getLogger(__name__)

_WAIT_S = 15.0  # the most the engine waits for the children before measuring memory
_IN_PROCESS = 4  # kernel_calls' last ones, which the engine process compiles itself (wait)
# The modules whose Triton kernels the children compile, and pdl (how they launch): their
# sources name the marker.
_KERNEL_MODULES = ("gumbel_sample", "paged_attention", "qk_rotary_kv_write", "rmsnorm", "activation", "pdl")


def _triton_cache_dir() -> str:
    import triton

    knobs = getattr(triton, "knobs", None)  # Triton >= 3.4
    if knobs is not None:
        return knobs.cache.dir
    return os.environ.get("TRITON_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".triton", "cache")


def marker_path(spec: dict) -> str:
    """Where a successful precompile of `spec` is recorded, beside the kernels it compiled."""
    import triton

    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode() + triton.__version__.encode())
    kernels = os.path.join(os.path.dirname(os.path.abspath(ember.__file__)), "kernels")
    for name in _KERNEL_MODULES:
        with open(os.path.join(kernels, name + ".py"), "rb") as f:
            digest.update(f.read())
    return os.path.join(_triton_cache_dir(), f"ember-precompiled-{digest.hexdigest()[:32]}")


def model_spec(model: torch.nn.Module, device: torch.device, dtype: torch.dtype, kv_dtype: torch.dtype,
               block_size: int, max_num_seqs: int, context_bounds: list[int], prefill_sizes: list[int]) -> dict | None:
    """What the children need to lay out tensors as the model's decode step (and a prefill
    graph's chunk of `prefill_sizes` tokens) does; None when the model does not run Ember's
    Triton decode path."""
    from ember.kernels import paged_attention
    from ember.worker.kv_cache import attention_layers

    layers = attention_layers(model)
    if not layers:
        return None
    attn = layers[0]
    prelude = next((m for m in model.modules() if getattr(m, "fused_prelude", None) is not None), None)
    gate_up = next((m for name, m in model.named_modules() if name.endswith("gate_up_proj")), None)
    if attn.kernels.paged_attention is not paged_attention.paged_attention or prelude is None or gate_up is None:
        return None
    return dict(
        device=(device.index if device.index is not None else torch.cuda.current_device())
        if device.type == "cuda" else device.type,
        dtype=str(dtype).removeprefix("torch."), kv_dtype=str(kv_dtype).removeprefix("torch."),
        hidden=model.config.hidden_size, intermediate=gate_up.out_features // 2,
        num_heads=attn.num_heads, num_kv_heads=attn.num_kv_heads, head_dim=attn.head_dim,
        qk_norm=prelude.q_norm is not None, eps=prelude.q_norm.eps if prelude.q_norm is not None else 1e-6,
        cos_sin=list(prelude.rope.cos_sin_cache.shape), cos_sin_dtype=str(prelude.rope.cos_sin_cache.dtype)
        .removeprefix("torch."),
        vocab=model.config.vocab_size, max_num_seqs=max_num_seqs, context_bounds=context_bounds,
        prefill_sizes=prefill_sizes, block_size=block_size,
    )


def kernel_calls(spec: dict) -> list:
    """Closures, each calling one kernel variant the decode step launches, most valuable first."""
    from ember.kernels.gumbel_sample import gumbel_sample
    from ember.kernels.paged_attention import paged_attention
    from ember.kernels.qk_rotary_kv_write import qk_rotary_kv_write
    from ember.kernels.rmsnorm import fused_add_rms_norm, rms_norm
    from ember.kernels.activation import silu_and_mul

    dev = torch.device("cuda", spec["device"]) if isinstance(spec["device"], int) else torch.device(spec["device"])
    dtype, kv_dtype = getattr(torch, spec["dtype"]), getattr(torch, spec["kv_dtype"])
    hq, hk, d, bs = spec["num_heads"], spec["num_kv_heads"], spec["head_dim"], spec["block_size"]

    @functools.cache
    def kv_cache():  # views of one [K/V, blocks, slots, heads, dim] tensor, as the engine's
        cache = torch.zeros(2, 4, bs, hk, d, dtype=kv_dtype, device=dev)
        return cache[0], cache[1]

    def qkv(n):  # the fused projection's output and its q/k/v views, as the model splits them
        out = torch.randn(n, (hq + 2 * hk) * d, dtype=dtype, device=dev)
        q, k, v = out.split([hq * d, hk * d, hk * d], dim=-1)
        return q.view(n, hq, d), k.view(n, hk, d), v.view(n, hk, d)

    def prelude(write: bool):
        def call():
            q, k, v = qkv(2)
            w = torch.ones(d, dtype=dtype, device=dev) if spec["qk_norm"] else None
            cos_sin = torch.zeros(spec["cos_sin"], dtype=getattr(torch, spec["cos_sin_dtype"]), device=dev)
            slots = (*kv_cache(), torch.tensor([0, -1], device=dev)) if write else ()
            qk_rotary_kv_write(q, k, v, w, w, spec["eps"], torch.zeros(2, dtype=torch.int64, device=dev), cos_sin,
                               *slots)
        return call

    def decode_attention(n: int, bound: int):
        def call():
            q = qkv(n)[0]
            tables = torch.zeros(n, -(-max(spec["context_bounds"]) // bs), dtype=torch.int32, device=dev)
            paged_attention(q, *kv_cache(), tables, torch.arange(n + 1, dtype=torch.int32, device=dev),
                            torch.ones(n, dtype=torch.int32, device=dev), d ** -0.5, 1, bound)
        return call

    def chunk_attention(n: int):  # one sequence's prompt chunk padded to n tokens (prefill graphs)
        def call():
            q = qkv(n)[0]
            tables = torch.zeros(1, -(-spec["context_bounds"][0] // bs), dtype=torch.int32, device=dev)
            paged_attention(q, *kv_cache(), tables, torch.tensor([0, 1], dtype=torch.int32, device=dev),
                            torch.ones(1, dtype=torch.int32, device=dev), d ** -0.5, n, spec["context_bounds"][0])
        return call

    def sampler():
        n = 2
        gumbel_sample(torch.zeros(n, spec["vocab"], device=dev), torch.ones(n, device=dev),
                      torch.zeros(1, dtype=torch.int64, device=dev))

    def norms():
        x = torch.randn(2, spec["hidden"], dtype=dtype, device=dev)
        w = torch.ones(spec["hidden"], dtype=dtype, device=dev)
        rms_norm(x, w, 1e-6)
        fused_add_rms_norm(x, x.clone(), w, 1e-6)

    def activation():
        silu_and_mul(torch.randn(2, 2 * spec["intermediate"], dtype=dtype, device=dev))

    # The attention's two decode variants: a large batch under the short bound never splits, one
    # sequence under the long bound does (where the model's length allows splits at all).
    bounds = spec["context_bounds"]
    attention = [decode_attention(spec["max_num_seqs"], bounds[0]), decode_attention(1, bounds[-1])]
    # The prefill graphs' variants: their smallest size may fit one q block (split), the largest not.
    sizes = spec["prefill_sizes"]
    attention += [chunk_attention(n) for n in sorted({sizes[0], sizes[-1]})]
    # The last _IN_PROCESS are the kernels of the engine's own first forward (or their decode
    # variants): the engine compiles them itself while it waits, warm, not a child starting cold.
    return [prelude(True), *attention, sampler, norms, activation, prelude(False)]


def child_share(calls: list, index: int, count: int) -> list:
    """The calls child `index` of `count` makes: every count-th of those before the engine's own."""
    return calls[:-_IN_PROCESS][index::count]


class Precompiler:
    """The children compiling the decode step's kernels; `wait` before measuring GPU memory."""

    def __init__(self, spec: dict, processes: int):
        self.start, self.marker = time.perf_counter(), marker_path(spec)
        calls = kernel_calls(spec)
        self.in_process = calls[-_IN_PROCESS:]
        count = max(1, min(processes, len(calls) - _IN_PROCESS))
        # The children import ember as this process does, even from a source tree.
        root = os.path.dirname(os.path.dirname(os.path.abspath(ember.__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        text = json.dumps(spec)
        self.children = [subprocess.Popen([sys.executable, "-m", "ember.worker.precompile", text, str(i), str(count)],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, env=env)
                         for i in range(count)]

    @staticmethod
    def launch(spec: dict | None) -> "Precompiler | None":
        """Children for a GPU engine whose decode path is Ember's Triton kernels, unless an
        earlier start compiled them all already; EMBER_PRECOMPILE=0 turns them off."""
        if spec is None or os.environ.get("EMBER_PRECOMPILE", "1") == "0":
            return None
        if os.path.exists(marker_path(spec)):
            logger.info("The decode kernels are in Triton's cache already: no precompiling children")
            return None
        # One call a child at most (five: the attention variants and the q/k prelude with its
        # cache write): more children only add start-up work on the same cores (H200, session 7:
        # 9 children took 12.4 s to 6's 8.8 s, both GPUs starting cold).
        return Precompiler(spec, processes=max(1, (os.cpu_count() or 2) // 2 - 1))

    def wait(self) -> None:
        """Compile this process's share while the children work, then join them."""
        failed = 0
        for call in self.in_process:
            try:
                call()
            except Exception:  # noqa: BLE001 - best effort, as in a child
                logger.debug("Precompile call failed in the engine process", exc_info=True)
                failed += 1
        deadline = time.monotonic() + _WAIT_S
        codes, late = [int(failed > 0)], 0
        for child in self.children:
            try:
                codes.append(child.wait(timeout=max(0.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                child.kill()
                codes.append(child.wait())
                late += 1
        logger.info("Precompiled the decode kernels in %d processes and this one (%d of %d ok, %d stopped after "
                    "%.0f s) in %.1f s", len(codes) - 1, sum(c == 0 for c in codes), len(codes), late, _WAIT_S,
                    time.perf_counter() - self.start)
        if all(c == 0 for c in codes):
            os.makedirs(os.path.dirname(self.marker), exist_ok=True)
            open(self.marker, "w").close()


def main() -> None:
    spec, index, count = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    if isinstance(spec["device"], int):
        torch.cuda.set_device(spec["device"])
    failed = 0
    for call in child_share(kernel_calls(spec), index, count):
        try:
            call()
        except Exception:  # best effort: the engine compiles what is missing itself
            failed += 1
    if isinstance(spec["device"], int):  # a CPU spec (the tests') never creates a CUDA context
        torch.cuda.synchronize()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
