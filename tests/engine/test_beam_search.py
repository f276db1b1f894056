"""LLM.beam_search (vLLM's offline beam search), checked against a search over transformers'
own next-token distributions."""

import pytest
import torch

from ember import LLM, SamplingParams
from ember.beam_search import BeamSearchOutput, get_beam_search_score
from ember.sampling_params import BeamSearchParams

PROMPTS = [[5, 17, 300, 4000], [9, 8, 7, 6, 5]]


@pytest.fixture(scope="module")
def llm(tiny_llama):
    return LLM(tiny_llama, max_num_seqs=16)


@pytest.fixture(scope="module")
def hf(tiny_llama):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()


def _reference(hf, prompt, width, steps, length_penalty=1.0):
    """The same search (2 * width candidates per beam, the best `width` kept), run on
    transformers' full-sequence log-softmax; EOS is ignored."""
    beams = [(list(prompt), 0.0)]
    for _ in range(steps):
        candidates = []
        for tokens, score in beams:
            with torch.no_grad():
                row = hf(torch.tensor([tokens])).logits[0, -1].log_softmax(-1)
            top = row.topk(2 * width)
            candidates += [(tokens + [t], score + lp) for lp, t in zip(top.values.tolist(), top.indices.tolist())]
        candidates.sort(key=lambda c: c[1] / len(c[0]) ** length_penalty, reverse=True)
        beams = candidates[:width]
    return beams


@pytest.mark.parametrize("width", [1, 3])
def test_beams_match_the_reference_search(llm, hf, width):
    params = BeamSearchParams(beam_width=width, max_tokens=4, ignore_eos=True)
    outputs = llm.beam_search([{"prompt_token_ids": p} for p in PROMPTS], params)
    assert len(outputs) == len(PROMPTS) and all(isinstance(o, BeamSearchOutput) for o in outputs)
    for prompt, out in zip(PROMPTS, outputs):
        want = _reference(hf, prompt, width, 4)
        assert [s.tokens for s in out.sequences] == [tokens for tokens, _ in want]
        for seq, (_, score) in zip(out.sequences, want):
            assert seq.cum_logprob == pytest.approx(score, abs=1e-3)
            assert seq.finish_reason == "length" and len(seq.logprobs) == 4
            assert seq.text == llm.get_tokenizer().decode(seq.tokens[len(prompt):], skip_special_tokens=True)


def test_width_one_is_greedy(llm):
    greedy = llm.generate([{"prompt_token_ids": PROMPTS[0]}],
                          SamplingParams(temperature=0, max_tokens=6, ignore_eos=True), use_tqdm=False)
    [out] = llm.beam_search([{"prompt_token_ids": PROMPTS[0]}], BeamSearchParams(beam_width=1, max_tokens=6,
                                                                                   ignore_eos=True))
    assert out.sequences[0].tokens[len(PROMPTS[0]):] == greedy[0].outputs[0].token_ids


def test_beams_report_how_they_ended_best_first(llm):
    """An end-of-sequence candidate completes its beam ("stop"); the others run to max_tokens
    ("length"); the beams come best first by length-penalised score."""
    eos = set(llm.llm_engine.eos_token_ids)
    out = llm.beam_search(["Hello there", PROMPTS[1]], BeamSearchParams(beam_width=4, max_tokens=5))
    for result in out:
        for seq in result.sequences:
            ended = seq.tokens[-1] in eos
            assert seq.finish_reason == ("stop" if ended else "length")
        scores = [get_beam_search_score(s.tokens, s.cum_logprob, eos) for s in result.sequences]
        assert scores == sorted(scores, reverse=True)


def test_concurrency_limit_and_text_prompts_give_the_same_beams(llm):
    params = BeamSearchParams(beam_width=2, max_tokens=3, ignore_eos=True)
    tokenizer = llm.get_tokenizer()
    texts = ["Once upon a time", "The capital of France"]
    together = llm.beam_search(texts, params)
    one_by_one = llm.beam_search([{"prompt": t} for t in texts], params, concurrency_limit=1)
    as_ids = llm.beam_search([tokenizer.encode(texts[0])], params)
    assert [[s.tokens for s in o.sequences] for o in together] == [[s.tokens for s in o.sequences]
                                                                   for o in one_by_one]
    assert [s.tokens for s in as_ids[0].sequences] == [s.tokens for s in together[0].sequences]


@pytest.mark.parametrize("kwargs, message", [
    ({"beam_width": 0, "max_tokens": 4}, "beam_width must be an integer >= 1"),
    ({"beam_width": 2, "max_tokens": 0}, "max_tokens must be an integer >= 1"),
    ({"beam_width": 2, "max_tokens": 4, "include_stop_str_in_output": True}, "no stop strings"),
])
def test_invalid_params_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BeamSearchParams(**kwargs)
