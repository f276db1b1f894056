"""The offline LLM API as vLLM users call it."""
import json
import os
import shutil

import pytest

from ember import LLM, RequestOutput, SamplingParams


@pytest.fixture(scope="module")
def llm(tiny_llama):
    return LLM(tiny_llama)


def test_generate_keeps_input_order_and_shapes(llm):
    prompts = ["Hello, my name is", "The capital of France is", "A", "Once upon a time, in a land far away,"]
    outs = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=5, ignore_eos=True))
    assert [o.prompt for o in outs] == prompts
    tok = llm.get_tokenizer()
    for prompt, out in zip(prompts, outs):
        assert isinstance(out, RequestOutput) and out.finished
        assert out.prompt_token_ids == tok.encode(prompt)
        assert len(out.outputs) == 1 and len(out.outputs[0].token_ids) == 5
        assert out.outputs[0].finish_reason == "length" and out.outputs[0].stop_reason is None


def test_generate_accepts_one_prompt_token_lists_and_per_prompt_params(llm):
    single = llm.generate("Hi", SamplingParams(max_tokens=2, ignore_eos=True), use_tqdm=False)
    assert len(single) == 1
    ids = llm.generate([[5, 6, 7], [8, 9]], [SamplingParams(max_tokens=2, ignore_eos=True),
                                             SamplingParams(max_tokens=3, ignore_eos=True)], use_tqdm=False)
    assert [len(o.outputs[0].token_ids) for o in ids] == [2, 3]
    assert ids[0].prompt is None and ids[0].prompt_token_ids == [5, 6, 7]
    with pytest.raises(ValueError, match="sampling_params"):
        llm.generate(["a", "b"], [SamplingParams()], use_tqdm=False)


def test_chat_renders_the_template_and_takes_many_conversations(llm):
    conversation = [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "Hi!"}]
    params = SamplingParams(temperature=0, max_tokens=4, ignore_eos=True)
    one = llm.chat(conversation, params, use_tqdm=False)
    expected_prompt = llm.get_tokenizer().apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    assert one[0].prompt == expected_prompt
    assert one[0].prompt.rstrip().endswith("assistant")
    many = llm.chat([conversation, conversation[1:]], params, use_tqdm=False)
    assert many[0].outputs[0].token_ids == one[0].outputs[0].token_ids
    custom = llm.chat(conversation, params, use_tqdm=False,
                      chat_template="{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}")
    assert custom[0].prompt == "[system] You are helpful.\n[user] Hi!\n"


def test_generation_config_supplies_defaults(tiny_llama, tmp_path):
    model = shutil.copytree(tiny_llama, tmp_path / "m")
    with open(os.path.join(model, "generation_config.json"), "w") as f:
        json.dump({"do_sample": True, "temperature": 0.7, "top_p": 0.8, "top_k": 20,
                   "repetition_penalty": 1.05, "eos_token_id": [5, 6]}, f)
    llm = LLM(str(model))
    p = llm.get_default_sampling_params()
    assert (p.temperature, p.top_p, p.top_k, p.repetition_penalty) == (0.7, 0.8, 20, 1.05)
    assert llm.llm_engine.eos_token_ids == [5, 6]
    assert SamplingParams().temperature == 1.0  # explicit params are the user's own


def test_readme_quickstart_runs_as_written(tiny_llama):
    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")).read()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert "from ember import LLM, SamplingParams" in code
    code = code.replace("Qwen/Qwen2.5-7B-Instruct", tiny_llama).replace("max_tokens=512", "max_tokens=8")
    exec(compile(code, "README.md", "exec"), {})


def test_shutdown_frees_the_weights_and_cache_while_the_llm_object_lives(tiny_llama):
    """Another engine may start in the same process (tests, notebooks): shutdown gives the
    memory back at once rather than when the garbage collector breaks the engine's cycles."""
    import weakref

    llm = LLM(tiny_llama, dtype="float32", enforce_eager=True)
    runner = llm.llm_engine.core.executor.runner
    weights = weakref.ref(next(runner.model.parameters()))
    cache = weakref.ref(runner.kv_caches[0])
    llm.llm_engine.shutdown()
    assert weights() is None and cache() is None
    llm.llm_engine.shutdown()  # a second call is harmless


def test_dropping_the_llm_frees_its_kv_cache_without_the_garbage_collector(tiny_llama):
    """`del llm` (then torch.cuda.empty_cache()) is how notebooks and tests make room for the
    next engine: no reference cycle through the engine may keep its KV cache (most of the GPU)
    until a collection. (Parameters still reach their layers through their weight loaders: the
    weights go at the next collection, or at once with LLMEngine.shutdown().)"""
    import gc
    import weakref

    llm = LLM(tiny_llama, dtype="float32", enforce_eager=True)
    llm.generate(["Hello"], SamplingParams(max_tokens=2), use_tqdm=False)
    runner = llm.llm_engine.core.executor.runner
    model, cache = weakref.ref(runner.model), weakref.ref(runner.kv_caches[0])
    del runner
    gc.disable()
    try:
        del llm
        assert model() is None and cache() is None
    finally:
        gc.enable()
