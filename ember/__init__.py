"""Ember: an LLM inference and serving engine with vLLM's interface."""
from ember.outputs import CompletionOutput, Logprob, RequestOutput
from ember.sampling_params import SamplingParams


def __getattr__(name: str):
    # LLM on first use: `ember serve` and the child processes import this package without
    # needing the offline engine (torch, the model code: seconds on a small CPU).
    if name == "LLM":
        from ember.llm import LLM

        return LLM
    raise AttributeError(f"module 'ember' has no attribute {name!r}")


__version__ = "0.1.0"
__all__ = ["LLM", "SamplingParams", "RequestOutput", "CompletionOutput", "Logprob", "__version__"]
