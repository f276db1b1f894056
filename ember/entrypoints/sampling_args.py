"""Sampling flags of `ember generate` and `ember chat`, and the one rule every front end uses
to build SamplingParams: fields the user set, over the checkpoint's generation_config.json
defaults."""
from __future__ import annotations

import argparse

from ember.sampling_params import SamplingParams

# flag dest -> type; each is a SamplingParams field of the same name.
_FLAGS = {"temperature": float, "top_p": float, "top_k": int, "min_p": float,
          "repetition_penalty": float, "presence_penalty": float, "frequency_penalty": float,
          "max_tokens": int}


def sampling_params_with(defaults: SamplingParams, overrides: dict) -> SamplingParams:
    """A new, validated SamplingParams: `defaults` (engine.default_sampling_params()) with
    `overrides` on top. max_tokens absent means "what max_model_len leaves" (None)."""
    values = {name: getattr(defaults, name) for name in SamplingParams.field_names()}
    values["best_of"] = None  # follows n unless given
    values["max_tokens"] = None
    values.update(overrides)
    return SamplingParams(**values)


def add_sampling_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sampling (unset: the model's generation_config defaults)")
    for name, kind in _FLAGS.items():
        group.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None)
    group.add_argument("--stop", action="append", default=None, help="stop string (repeatable)")
    group.add_argument("--ignore-eos", action="store_true", default=None)


def sampling_overrides(args: argparse.Namespace) -> dict:
    """The sampling fields set on the command line, by SamplingParams name."""
    names = [*_FLAGS, "stop", "ignore_eos"]
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}
