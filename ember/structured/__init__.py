"""Structured output through xgrammar: JSON schemas, OpenAI's json_object mode, regular
expressions, choices and EBNF grammars.

- params.py: GuidedDecodingParams, the request's constraint (plain data, vLLM's field names);
- grammar.py: xgrammar, loaded on first use: tokenizer vocabulary, compiler with its cache;
- manager.py: the engine's side: a matcher per constrained sequence, each step's bitmask.

The bitmask is applied to the logits on their device by ember/worker/sampler.py. `import
ember` never imports xgrammar."""
from ember.structured.params import GuidedDecodingParams

__all__ = ["GuidedDecodingParams"]
