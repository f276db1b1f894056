"""Checks of what a caller hands the engine that need the model's vocabulary or the prompt's
shape, shared by LLM (offline) and the server: each failure a ValueError naming the field and
the bad value, never an error from deep inside the engine."""
from __future__ import annotations

from ember.sampling_params import SamplingParams


class FieldError(ValueError):
    """A ValueError that knows which request field it is about (the server's 400 names it)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def check_token_fields(params: SamplingParams, vocab_size: int) -> None:
    """allowed_token_ids and logit_bias hold ids of this vocabulary."""
    for token in params.allowed_token_ids or ():
        if token >= vocab_size:
            raise FieldError("allowed_token_ids", f"allowed_token_ids: token id {token} is out of the vocabulary "
                                                  f"[0, {vocab_size}).")
    for token in params.logit_bias or {}:
        if token >= vocab_size:
            raise FieldError("logit_bias", f"logit_bias: key {str(token)!r} is not a token id of the vocabulary "
                                           f"[0, {vocab_size}).")


def check_prompt(prompt: object, index: int | None = None) -> None:
    """A prompt's token ids, when it gives them, are integers (a list of them, or a dict's
    "prompt_token_ids"); strings and dicts are the engine's to read. `index`: the prompt's place
    in a batch, named in the message."""
    where = "" if index is None else f"prompts[{index}]: "
    ids = prompt.get("prompt_token_ids") if isinstance(prompt, dict) else prompt
    if not isinstance(ids, (list, tuple)):
        if isinstance(prompt, dict) and "prompt_token_ids" in prompt:
            raise FieldError("prompt_token_ids", f"{where}prompt_token_ids must be a list of integers, "
                                                 f"got {type(ids).__name__}.")
        return
    bad = next((t for t in ids if not isinstance(t, int) or isinstance(t, bool)), None)
    if bad is not None:
        raise FieldError("prompt_token_ids", f"{where}prompt_token_ids must hold integers (token ids), "
                                             f"got {bad!r}.")
