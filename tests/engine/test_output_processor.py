"""The front end's output processing: text from the core's token updates, stop strings found
here (and the core told to stop that sample), and outputs shaped by output_kind."""
import pytest

from ember.engine.messages import SampleUpdate
from ember.engine.output_processor import OutputProcessor
from ember.sampling_params import RequestOutputKind, SamplingParams
from tests.tiny_models import smollm2_tokenizer


def _processor_with(params: SamplingParams, prompt: str = "Say:"):
    tok = smollm2_tokenizer()
    processor = OutputProcessor(tok)
    processor.add_request("r", prompt, tok.encode(prompt), params, arrival_time=0.0)
    return tok, processor


def _feed(processor, tok, text: str, index: int = 0):
    """One update per token of `text`, as the core sends them; the processed results."""
    return [processor.process([SampleUpdate("r", index, [t])], now=1.0) for t in tok.encode(text)]


def test_a_stop_string_ends_the_sample_and_asks_the_core_to_stop_it():
    tok, processor = _processor_with(SamplingParams(stop=["STOP"], max_tokens=50))
    results = _feed(processor, tok, "one two STOP three four")
    aborted = [r.samples_to_abort for r in results if r.samples_to_abort]
    assert aborted == [[("r", 0)]]
    final = next(o for r in results for o in r.outputs if o.finished)
    assert final.outputs[0].text == "one two " and final.outputs[0].finish_reason == "stop"
    assert final.outputs[0].stop_reason == "STOP"
    assert not processor.has_unfinished_requests()


def test_deltas_hold_each_piece_of_text_once_and_hold_back_a_possible_stop_string():
    tok, processor = _processor_with(SamplingParams(stop=["STOP"], max_tokens=50,
                                                    output_kind=RequestOutputKind.DELTA))
    results = _feed(processor, tok, "alpha beta ST gamma STOP")
    deltas = [o.outputs[0] for r in results for o in r.outputs if o.outputs]
    assert "".join(d.text for d in deltas) == "alpha beta ST gamma "
    assert sum(len(d.token_ids) for d in deltas) == len(tok.encode("alpha beta ST gamma STOP"))
    assert deltas[-1].finish_reason == "stop"


def test_final_only_gives_one_output_and_a_core_stop_token_is_not_shown():
    tok, processor = _processor_with(SamplingParams(max_tokens=50, output_kind=RequestOutputKind.FINAL_ONLY))
    outputs = [o for r in _feed(processor, tok, "hello world") for o in r.outputs]
    assert outputs == []
    eos = tok.eos_token_id
    result = processor.process([SampleUpdate("r", 0, [eos], finish_reason="stop")], now=2.0)
    (final,) = result.outputs
    assert final.finished and final.outputs[0].text == "hello world"
    assert final.outputs[0].token_ids[-1] == eos and final.outputs[0].stop_reason is None


def test_a_core_error_fails_the_request_alone():
    tok, processor = _processor_with(SamplingParams(max_tokens=5))
    processor.add_request("other", "x", tok.encode("x"), SamplingParams(max_tokens=5), arrival_time=0.0)
    result = processor.process([SampleUpdate("r", 0, error="grammar broke"), SampleUpdate("other", 0, [5])], 1.0)
    assert list(result.failed) == ["r"] and "grammar broke" in str(result.failed["r"])
    assert [o.request_id for o in result.outputs] == ["other"]


@pytest.mark.parametrize("include_stop_str_in_output", [False, True])
@pytest.mark.parametrize("skip_special_tokens", [True, False])
def test_final_only_text_decoded_at_the_end_equals_the_text_decoded_step_by_step(
        include_stop_str_in_output, skip_special_tokens):
    tok = smollm2_tokenizer()
    ids = tok.encode("emoji 🎉 and café <|im_start|> naïve", add_special_tokens=False) + [tok.eos_token_id]

    def final_text(kind: RequestOutputKind) -> tuple[str, list[int]]:
        params = SamplingParams(max_tokens=50, output_kind=kind, skip_special_tokens=skip_special_tokens,
                                include_stop_str_in_output=include_stop_str_in_output)
        _, processor = _processor_with(params)
        for i, t in enumerate(ids):
            last = i == len(ids) - 1
            result = processor.process([SampleUpdate("r", 0, [t], finish_reason="stop" if last else None,
                                                     stop_reason=t if last else None)], now=1.0)
        (final,) = result.outputs
        assert final.finished and final.outputs[0].finish_reason == "stop"
        return final.outputs[0].text, final.outputs[0].token_ids

    assert final_text(RequestOutputKind.FINAL_ONLY) == final_text(RequestOutputKind.CUMULATIVE)
