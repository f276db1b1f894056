"""The transformers baseline: the same requests through transformers' own generation, as
../shared/bench/hf_baseline.py runs it (static left-padded batches, or transformers'
continuous batching), so one device call measures both sides."""
from __future__ import annotations

import time

import torch

from ember.entrypoints.bench.workloads import Request, check_output_lengths
from ember.models.hf_config import split_gguf


class HFBackend:
    name = "hf"

    def __init__(self, path: str, dtype: torch.dtype, device: str, random_weights: bool, seed: int,
                 trust_remote_code: bool, max_batch_size: int, continuous: bool):
        self.device, self.dtype, self.max_batch_size, self.continuous = device, dtype, max_batch_size, continuous
        start = time.perf_counter()
        self.model = _load(path, dtype, device, random_weights, seed, trust_remote_code)
        if continuous and not hasattr(self.model, "init_continuous_batching"):
            import transformers

            raise RuntimeError(f"--hf-continuous needs transformers' continuous batching "
                               f"(model.init_continuous_batching), which transformers "
                               f"{transformers.__version__} lacks; drop the flag or upgrade transformers.")
        self.startup_seconds = time.perf_counter() - start
        # Transformers' continuous batching warms up (compiles, sizes its cache) before timing.
        self.warmup_seconds = 0.0

    def generate(self, requests: list[Request], progress: bool = True) -> float:
        """Seconds to generate every request; `progress` is accepted for the Ember backend's sake."""
        if self.continuous:
            return self._continuous(requests)
        return self._static(requests)

    def _static(self, requests: list[Request]) -> float:
        # Static batches in request order; each batch runs until its longest output is done.
        _sync(self.device)
        start = time.perf_counter()
        for i in range(0, len(requests), self.max_batch_size):
            batch = requests[i:i + self.max_batch_size]
            width = max(len(p) for p, _ in batch)
            ids = torch.tensor([[0] * (width - len(p)) + p for p, _ in batch], device=self.device)
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p, _ in batch], device=self.device)
            longest = max(o for _, o in batch)
            self.model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0, top_p=1.0,
                                max_new_tokens=longest, min_new_tokens=longest, pad_token_id=0, use_cache=True)
        _sync(self.device)
        return time.perf_counter() - start

    def _continuous(self, requests: list[Request]) -> float:
        from transformers import GenerationConfig

        config = GenerationConfig(do_sample=False, max_new_tokens=max(o for _, o in requests), eos_token_id=-1)
        manager = self.model.init_continuous_batching(generation_config=config)
        start = time.perf_counter()
        if hasattr(manager, "warmup"):  # not in every transformers that has continuous batching
            manager.warmup()
        self.warmup_seconds += time.perf_counter() - start
        manager.start()
        try:
            _sync(self.device)
            start = time.perf_counter()
            ids = [manager.add_request(p, max_new_tokens=o, eos_token_id=-1) for p, o in requests]
            produced: dict[str, int] = {}
            while len(produced) < len(ids):
                result = manager.get_result(timeout=5)
                if result is None:
                    if not manager.is_running():
                        break
                    continue
                if result.is_finished():
                    produced[result.request_id] = len(result.generated_tokens)
            _sync(self.device)
            elapsed = time.perf_counter() - start
        finally:
            manager.stop(block=True, timeout=10)
        check_output_lengths(requests, [produced.get(i, 0) for i in ids])
        return elapsed


def _load(path: str, dtype: torch.dtype, device: str, random_weights: bool, seed: int, trust_remote_code: bool):
    from transformers import AutoConfig, AutoModelForCausalLM

    directory, gguf_file = split_gguf(path)
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    if random_weights:
        # As hf_baseline.py: built on the device at the checkpoint's shapes, weights N(0, 0.02).
        config = AutoConfig.from_pretrained(directory, trust_remote_code=trust_remote_code, **extra)
        torch.manual_seed(seed)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=trust_remote_code)
        for p in model.parameters():
            p.data.normal_(0, 0.02)
    else:
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype, trust_remote_code=trust_remote_code,
                                                     **extra).to(device)
    return model.eval()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
