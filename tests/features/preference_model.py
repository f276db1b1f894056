"""A tiny Llama checkpoint with hand-set weights, for the feature tests: its greedy choice is
predictable, so constrained outputs end quickly and the tests never hang on a model that
rambles inside a JSON string.

Its layers add nothing to the residual stream (o_proj and down_proj are zero), so the logits
depend on the last token alone:
- every token has a fixed preference, in tiers: end-of-sequence first, then '"', then '}' and
  ']', ',', digits, '{' and '['; whitespace last; every other token a random value below them.
  Under a grammar the model takes the most preferred token the grammar allows: strings close as
  soon as they may, objects skip optional members, arrays stop at minItems, regexes and choices
  end at the first point they can.
- a short chain of token-to-token jumps makes the unconstrained answer to a chat prompt
  (which ends in a newline) "Let me think</think>" and then end-of-sequence: a reasoning
  that ends, which the reasoning + JSON schema test needs."""
from __future__ import annotations

import os

import torch
from safetensors.torch import load_file, save_file

from tests.tiny_models import build_tiny_checkpoint, smollm2_tokenizer

CHAIN_TEXT = "Let me think</think>"
_TIERS = [("<|im_end|>", 12.0), ('"', 8.0), ("}", 7.0), ("]", 7.0), (",", 5.0),
          *((str(d), 4.0) for d in range(10)), ("{", 3.0), ("[", 3.0)]
_WHITESPACE = -6.0
_CHAIN_BOOST = 40.0
_FIRST_RANDOM_DIM = 8


def build_preference_checkpoint(directory: str, max_position_embeddings: int = 1024) -> str:
    build_tiny_checkpoint(directory, "llama", max_position_embeddings=max_position_embeddings)
    path = os.path.join(directory, "model.safetensors")
    weights = load_file(path)
    tok = smollm2_tokenizer()
    generator = torch.Generator().manual_seed(1234)
    embed, head = weights["model.embed_tokens.weight"], weights["lm_head.weight"]
    vocab, hidden = embed.shape
    for name in weights:
        if name.endswith(("o_proj.weight", "down_proj.weight")):
            weights[name].zero_()
    weights["model.norm.weight"].fill_(1.0)
    embed.zero_()
    embed[:, 0] = 1.0
    embed[:, _FIRST_RANDOM_DIM:] = 0.05 * torch.randn(vocab, hidden - _FIRST_RANDOM_DIM, generator=generator)
    # The normalized hidden state: its dim 0 is about sqrt(hidden / (1 + 56 * 0.05^2)).
    x0 = (hidden / (1 + (hidden - _FIRST_RANDOM_DIM) * 0.05 ** 2)) ** 0.5
    head.zero_()
    head[:, _FIRST_RANDOM_DIM:] = 0.35 * torch.randn(vocab, hidden - _FIRST_RANDOM_DIM, generator=generator)
    tiers = {_single_token(tok, text): value for text, value in _TIERS}
    for token in _whitespace_tokens(tok):
        tiers.setdefault(token, _WHITESPACE)
    for token, value in tiers.items():
        head[token, :] = 0.0
        head[token, 0] = value / x0
    # The chain: "\n" -> "Let" -> " me" -> " think" -> "</" -> "think" -> ">" -> end.
    chain = [_single_token(tok, "\n"), *tok.encode(CHAIN_TEXT, add_special_tokens=False),
             _single_token(tok, "<|im_end|>")]
    for k, (a, b) in enumerate(zip(chain, chain[1:]), start=1):
        assert k < _FIRST_RANDOM_DIM, "the chain needs a hidden dimension per step"
        embed[a, k] = 1.0
        head[b, k] = _CHAIN_BOOST / (x0 / 2 ** 0.5)
    save_file(weights, path, metadata={"format": "pt"})
    return directory


def _single_token(tok, text: str) -> int:
    ids = tok.encode(text, add_special_tokens=False)
    assert len(ids) == 1, (text, ids)
    return ids[0]


def _whitespace_tokens(tok) -> list[int]:
    return [i for i in range(len(tok)) if (text := tok.decode([i])) and not text.strip()]
