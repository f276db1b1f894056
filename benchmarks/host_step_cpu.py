"""The host (Python) cost of one decode step, without the model's compute: a tiny random Qwen3
(2 layers, hidden 64, a 4096-token vocabulary, the SmolLM2 tokenizer) runs `LLM.generate` with
N sequences decoding together (ignore_eos, fixed max_tokens), on the CPU.

The model's forward, LM head and sampler are timed apart and taken out: what remains per step
is the host work a GPU step waits on (scheduling, input and sampling-batch building, collecting
tokens, output processing and detokenization, LLM.generate's loop). A cProfile run then lists
the host functions with the most cumulative time per step (the forward left out). Times are
the main thread's CPU time (with OMP_NUM_THREADS=1 the forward runs on it too), so other work
on a shared machine does not count.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/host_step_cpu.py
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

PROMPT_LEN = 8


def build_llm(directory: str):
    from ember import LLM
    from tests.tiny_models import build_tiny_checkpoint

    build_tiny_checkpoint(directory, "qwen3", vocab_size=4096, max_position_embeddings=4096)
    # Overlapped as on the GPU: each step is scheduled before the previous one's tokens are in.
    return LLM(directory, dtype="float32", max_model_len=1024, max_num_seqs=256, seed=0, async_scheduling=True,
               device="cpu")


class ForwardTimer:
    """Wraps the model's forward, its LM head and the sampler's tensor work to add up the time
    spent in them (on a GPU that is device time); a profiler being run is paused inside them,
    so it sees the host work alone."""

    def __init__(self, model: torch.nn.Module):
        from ember.worker import model_runner

        self.seconds = 0.0
        self.profiler: cProfile.Profile | None = None
        for name in ("forward", "compute_logits"):
            setattr(model, name, self._timed(getattr(model, name)))
        model_runner.sample = self._timed(model_runner.sample)

    def _timed(self, fn):
        def timed(*args, **kwargs):
            if self.profiler is not None:
                self.profiler.disable()
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.thread_time() - start
                if self.profiler is not None:
                    self.profiler.enable()
        return timed


def run(llm, num_seqs: int, num_steps: int, profiler: cProfile.Profile | None = None) -> int:
    """One generate of `num_seqs` prompts for `num_steps` tokens each; returns the steps taken."""
    from ember import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=num_steps, ignore_eos=True)
    prompts = [{"prompt_token_ids": [(7 * i + j) % 4000 + 10 for j in range(PROMPT_LEN)]} for i in range(num_seqs)]
    engine = llm.llm_engine
    steps = 0
    step = engine.step

    def counted():
        nonlocal steps
        steps += 1
        return step()

    engine.step = counted
    try:
        if profiler is not None:
            profiler.enable()
        llm.generate(prompts, params, use_tqdm=False)
        if profiler is not None:
            profiler.disable()
    finally:
        del engine.step
    return steps


def measure(llm, timer: ForwardTimer, num_seqs: int, num_steps: int, top: int, repeats: int) -> None:
    run(llm, num_seqs, 4)  # warm
    best = None
    for _ in range(repeats):  # the least host time: caches shared with other work only add
        timer.seconds = 0.0
        start = time.thread_time()
        steps = run(llm, num_seqs, num_steps)
        total = time.thread_time() - start
        if best is None or total - timer.seconds < best[0] - best[1]:
            best = (total, timer.seconds)
    total, forward = best
    host_ms = (total - forward) / steps * 1e3
    print(f"\n== {num_seqs} sequences: {steps} steps, CPU {total / steps * 1e3:.2f} ms/step in all, "
          f"forward {forward / steps * 1e3:.2f}, host {host_ms:.2f} ms/step "
          f"({host_ms / num_seqs * 1e3:.1f} us per sequence)")
    profiler = timer.profiler = cProfile.Profile()
    try:
        steps = run(llm, num_seqs, num_steps, profiler)
    finally:
        timer.profiler = None
    stats = pstats.Stats(profiler)
    rows = []
    for (file, line, name), (_, calls, _, cumtime, _) in stats.stats.items():
        if "ember" not in file or "benchmarks" in file:
            continue
        rows.append((cumtime, calls, f"{os.path.relpath(file)}:{line}({name})"))
    rows.sort(reverse=True)
    print(f"   top host functions (cProfile, cumulative ms per step, calls per step):")
    for cumtime, calls, where in rows[:top]:
        print(f"   {cumtime / steps * 1e3:8.3f} ms  {calls / steps:8.1f}  {where}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 64, 8])
    parser.add_argument("--steps", type=int, default=64, help="tokens per sequence (steps per run)")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per batch size (the best is kept)")
    args = parser.parse_args()
    if os.environ.get("OMP_NUM_THREADS") != "1":
        print("note: run with OMP_NUM_THREADS=1 for comparable numbers")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as directory:
        llm = build_llm(directory)
        timer = ForwardTimer(llm.llm_engine.executor.runner.model)
        for n in args.batch_sizes:
            measure(llm, timer, n, args.steps, args.top, args.repeats)


if __name__ == "__main__":
    main()
