"""Structured output in the engine and the offline API: SamplingParams(guided_decoding=...),
LLM.chat(..., chat_template_kwargs=...), the bitmask applied on the logits' device, requests
without constraints untouched, and `import ember` without xgrammar."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import jsonschema
import pytest
import torch

from ember import LLM, SamplingParams
from ember.sampling_params import GuidedDecodingParams, StructuredOutputsParams
from ember.worker.sampler import apply_token_bitmask
from tests.features.conftest import TEMPLATE
from tests.features.test_structured import ITEMS, PERSON
from tests.tiny_models import build_tiny_checkpoint


@pytest.fixture(scope="module")
def llm(preference_checkpoint):
    return LLM(preference_checkpoint, max_model_len=1024, num_gpu_blocks_override=24)


def greedy(spec: GuidedDecodingParams | None, **kwargs) -> SamplingParams:
    return SamplingParams(temperature=0, max_tokens=kwargs.pop("max_tokens", 300), guided_decoding=spec, **kwargs)


def test_import_ember_leaves_xgrammar_alone():
    code = "import sys, ember, ember.engine.llm_engine, ember.entrypoints.openai.api_server; " \
           "print('xgrammar' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_bitmask_matches_xgrammars_own():
    xgrammar = pytest.importorskip("xgrammar")
    torch.manual_seed(0)
    logits = torch.randn(5, 1000)
    bitmask = torch.randint(-2**31, 2**31 - 1, (2, 32), dtype=torch.int32)
    rows = torch.tensor([1, 3])
    expected, full = logits.clone(), torch.full((5, 32), -1, dtype=torch.int32)
    full[rows] = bitmask
    xgrammar.apply_token_bitmask_inplace(expected, full, vocab_size=1000, indices=[1, 3])
    assert torch.equal(apply_token_bitmask(logits, rows, bitmask), expected)


def test_offline_guided_decoding(llm):
    specs = [GuidedDecodingParams(json=PERSON), GuidedDecodingParams(json=json.dumps(ITEMS)),
             GuidedDecodingParams(regex=r"[A-Z]{2}\d{2}"), GuidedDecodingParams(choice=["up", "down"]),
             GuidedDecodingParams(grammar='root ::= "a" [0-9] "b"'), GuidedDecodingParams(json_object=True)]
    outs = llm.generate(["Q:"] * len(specs), [greedy(s) for s in specs], use_tqdm=False)
    texts = [o.outputs[0].text for o in outs]
    jsonschema.validate(json.loads(texts[0]), PERSON)
    jsonschema.validate(json.loads(texts[1]), ITEMS)
    assert re.fullmatch(r"[A-Z]{2}\d{2}", texts[2]) and texts[3] in ("up", "down")
    assert re.fullmatch(r"a\db", texts[4]) and isinstance(json.loads(texts[5]), dict)
    assert all(o.outputs[0].finish_reason == "stop" for o in outs)
    # vLLM's newer spelling, and n samples each with its own grammar state.
    [out] = llm.generate("Q:", SamplingParams(n=3, temperature=1.0, seed=3, max_tokens=300,
                                              structured_outputs=StructuredOutputsParams(json=PERSON)),
                         use_tqdm=False)
    for sample in out.outputs:
        jsonschema.validate(json.loads(sample.text), PERSON)


def test_constraints_survive_preemption(llm):
    # 24 blocks of 16 tokens cannot hold eight of these at once: the scheduler preempts.
    outs = llm.generate([f"Question {i}: " * 20 for i in range(8)], greedy(GuidedDecodingParams(json=PERSON)),
                        use_tqdm=False)
    assert llm.llm_engine.scheduler.num_preemptions > 0
    for out in outs:
        jsonschema.validate(json.loads(out.outputs[0].text), PERSON)


def test_an_invalid_constraint_is_a_value_error(llm):
    with pytest.raises(ValueError, match="JSON schema"):
        llm.generate("Q:", greedy(GuidedDecodingParams(json={"type": "foo"})), use_tqdm=False)
    with pytest.raises(ValueError, match="exactly one"):
        GuidedDecodingParams(regex="a", choice=["a"])


def test_chat_template_kwargs_reach_the_template(llm):
    messages = [{"role": "user", "content": "Hi"}]
    [off] = llm.chat(messages, greedy(None, max_tokens=5), chat_template=TEMPLATE,
                     chat_template_kwargs={"enable_thinking": False}, use_tqdm=False)
    [on] = llm.chat(messages, greedy(None, max_tokens=5), chat_template=TEMPLATE, use_tqdm=False)
    assert off.prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert on.prompt.endswith("<|im_start|>assistant\n")


def test_requests_without_constraints_are_untouched(tmp_path):
    llm = LLM(build_tiny_checkpoint(str(tmp_path / "tiny"), "llama"), max_model_len=256)
    prompts = [[5, 6, 7], [8, 9, 10, 11]]
    free = greedy(None, max_tokens=12, ignore_eos=True)
    alone = [o.outputs[0].token_ids for o in llm.generate(prompts, free, use_tqdm=False)]
    engine = llm.llm_engine
    masks = []
    launch = engine.executor.launch

    def spy(step):
        masks.append(step.grammar)
        return launch(step)

    engine.executor.launch = spy
    llm.generate(prompts, free, use_tqdm=False)
    assert masks and all(m is None for m in masks)  # no constraint: no bitmask, no work
    constrained = greedy(GuidedDecodingParams(choice=["alpha", "beta"]), max_tokens=12)
    mixed = llm.generate(prompts + prompts, [free, free, constrained, constrained], use_tqdm=False)
    assert [o.outputs[0].token_ids for o in mixed[:2]] == alone
    assert {o.outputs[0].text for o in mixed[2:]} <= {"alpha", "beta"}
    assert any(m is not None and len(m.seq_ids) == 2 for m in masks)  # only the constrained rows
