"""EngineArgs hold plain values and do nothing; resolve() alone reads the checkpoint and returns
the frozen EngineConfig that the engine, the executor and the workers read."""
import dataclasses

import pytest

from ember.engine_args import EngineArgs
from tests.tiny_models import build_tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    return build_tiny_checkpoint(str(tmp_path_factory.mktemp("args-llama")), "llama", max_position_embeddings=256)


def test_args_are_plain_values_read_by_nothing(monkeypatch):
    import ember.engine_args

    looked_up = []
    monkeypatch.setattr(ember.engine_args, "resolve_model", lambda model, *a: looked_up.append(model) or model)
    args = EngineArgs(model="nobody/no-such-model", max_model_len=10**9)  # neither looked up nor checked
    assert looked_up == []
    with pytest.raises(OSError):
        args.resolve()
    assert looked_up == ["nobody/no-such-model"]


def test_resolve_reads_the_checkpoint_and_picks_what_was_left_open(checkpoint):
    config = EngineArgs(model=checkpoint, device="cpu").resolve()
    assert config.model_path == config.tokenizer_path == checkpoint
    assert config.max_model_len == 256 and config.hf_config.max_position_embeddings == 256
    assert (config.attention_backend, config.async_scheduling, config.distributed_executor_backend) == \
        ("torch", False, None)
    assert config.max_num_batched_tokens == 8192 and config.served_model_name == [checkpoint]


def test_the_config_is_frozen(checkpoint):
    config = EngineArgs(model=checkpoint, device="cpu").resolve()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_num_seqs = 1


def test_bad_values_are_refused_by_resolve_naming_them(checkpoint):
    with pytest.raises(ValueError, match="max_model_len"):
        EngineArgs(model=checkpoint, max_model_len=257).resolve()
    with pytest.raises(ValueError, match="max_num_batched_tokens"):
        EngineArgs(model=checkpoint, max_num_seqs=64, max_num_batched_tokens=32).resolve()


def test_unknown_keyword_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="not_a_knob"):
        EngineArgs.from_kwargs(model="m", not_a_knob=1)
