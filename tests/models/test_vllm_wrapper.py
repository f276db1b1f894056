"""The seed's transformer-like chat wrapper on a tiny Qwen v1 chat checkpoint: three turns,
ChatML prompts built as Qwen's make_context builds them, history growing by (query, response),
sampling settings from generation_config.json."""
from ember.vllm_wrapper import chatml_prompt, vLLMWrapper

SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"


def test_three_turns(qwen_v1_dir, monkeypatch):
    model = vLLMWrapper(qwen_v1_dir, tensor_parallel_size=1, dtype="float32")
    prompts = []
    generate = model.model.generate

    def recording_generate(prompt, params, use_tqdm=True):
        prompts.append(prompt)
        return generate(prompt, params, use_tqdm=use_tqdm)

    monkeypatch.setattr(model.model, "generate", recording_generate)
    short = {**model.generation_config, "max_new_tokens": 6}
    history = None
    queries = ["你好", "给我讲一个年轻人奋斗创业最终取得成功的故事。", "给这个故事起一个标题"]
    for turn, query in enumerate(queries):
        response, new_history = model.chat(query=query, history=history, generation_config=short)
        assert new_history[:turn] == (history or []) and new_history[turn] == (query, response)
        assert history is None or len(history) == turn  # the caller's list is left alone
        history = new_history
    assert [q for q, _ in history] == queries

    r1, r2 = history[0][1], history[1][1]
    expected_last = (f"{SYSTEM}"
                     f"<|im_start|>user\n{queries[0]}<|im_end|>\n<|im_start|>assistant\n{r1}<|im_end|>\n"
                     f"<|im_start|>user\n{queries[1]}<|im_end|>\n<|im_start|>assistant\n{r2}<|im_end|>\n"
                     f"<|im_start|>user\n{queries[2]}<|im_end|>\n<|im_start|>assistant\n")
    assert prompts[0]["prompt"] == f"{SYSTEM}<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n"
    assert prompts[2]["prompt"] == expected_last
    tokenizer = model.tokenizer
    for p in prompts:
        assert tokenizer.decode(p["prompt_token_ids"]) == p["prompt"]


def test_sampling_follows_generation_config_and_window(qwen_v1_dir):
    model = vLLMWrapper(qwen_v1_dir, dtype="float32")
    params = model.sampling_params(model.generation_config)
    settings = (params.top_p, params.top_k, params.repetition_penalty, params.max_tokens)
    assert settings == (0.8, 0, 1.1, 512)
    assert set(params.stop_token_ids) == {151643, 151644, 151645}
    # Old turns are dropped first once the prompt would reach max_window_size tokens.
    history = [("第一个问题" * 20, "第一个回答" * 20), ("second", "answer")]
    text, ids = chatml_prompt(model.tokenizer, "third", history, "You are a helpful assistant.", 60)
    assert "second" in text and "第一个问题" not in text and len(ids) < 60
