"""What crosses the process boundary between the front end and the engine core survives the
trip: every SamplingParams field, and step updates, as msgpack."""
import dataclasses

import msgspec

from ember.engine.messages import (EngineCoreRequest, FromCore, SampleUpdate, StepResult, CoreStats, ToCore,
                                   from_wire, to_wire)
from ember.sampling_params import RequestOutputKind, SamplingParams
from ember.structured.params import GuidedDecodingParams


def test_every_sampling_field_survives_the_trip():
    params = SamplingParams(n=3, best_of=3, presence_penalty=0.5, frequency_penalty=-0.5, repetition_penalty=1.2,
                            temperature=0.7, top_p=0.9, top_k=20, min_p=0.05, seed=7, stop=["END", "\n\n"],
                            stop_token_ids=[5, 6], ignore_eos=True, max_tokens=40, min_tokens=2, logprobs=3,
                            prompt_logprobs=1, detokenize=False, skip_special_tokens=False,
                            spaces_between_special_tokens=False, include_stop_str_in_output=True,
                            guided_decoding=GuidedDecodingParams(json={"type": "object"}, start_after="</think>"),
                            allowed_token_ids=[1, 2, 3], logit_bias={4: -1.5, 9: 2.0},
                            output_kind=RequestOutputKind.DELTA)
    params._eos_token_ids = [2]
    request = EngineCoreRequest("r-1", [10, 11, 12], params, 123.5)
    wire = msgspec.msgpack.encode(to_wire(request))
    back = from_wire(msgspec.msgpack.Decoder(ToCore).decode(wire))
    assert back.request_id == "r-1" and back.prompt_token_ids == [10, 11, 12] and back.arrival_time == 123.5
    for field in dataclasses.fields(SamplingParams):
        assert getattr(back.params, field.name) == getattr(params, field.name), field.name
    assert back.params.guided_decoding is back.params.structured_outputs
    assert back.params.all_stop_token_ids == {5, 6}  # ignore_eos: the end-of-sequence id 2 does not stop it


def test_step_results_survive_the_trip():
    update = SampleUpdate("r", 1, [42], logprobs=[(-0.5, [(42, -0.5, 1), (7, -1.0, 2)])], finish_reason="stop",
                          stop_reason=42, num_cached_tokens=16)
    result = StepResult([update, SampleUpdate("s", 0, prompt_logprobs=[[(3, -2.0, 4)]])],
                        CoreStats(num_running=2, kv_blocks_used=5, kv_blocks_total=10), num_added=2)
    back = msgspec.msgpack.Decoder(FromCore).decode(msgspec.msgpack.encode(result))
    assert back == result and back.stats.kv_cache_usage == 0.5
