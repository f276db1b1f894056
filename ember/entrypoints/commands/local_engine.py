"""A local engine for `ember generate` and `ember chat`, and its text streamed as it comes."""
from __future__ import annotations

import argparse
import uuid
from typing import Iterator

from ember.engine.llm_engine import LLMEngine
from ember.entrypoints.engine_args import engine_config_from_args
from ember.sampling_params import RequestOutputKind, SamplingParams


def load_engine(args: argparse.Namespace) -> LLMEngine:
    try:
        return LLMEngine(engine_config_from_args(args))
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None


def stream_text(engine: LLMEngine, prompt: str | dict, params: SamplingParams) -> Iterator[str]:
    """New text of the first sample after each step, until the request finishes."""
    request_id = uuid.uuid4().hex
    engine.add_request(request_id, prompt, params.clone(output_kind=RequestOutputKind.DELTA))
    try:
        while engine.has_unfinished_requests():
            for output in engine.step():
                if output.request_id == request_id and output.outputs:
                    yield output.outputs[0].text
    finally:
        engine.abort_request(request_id)
