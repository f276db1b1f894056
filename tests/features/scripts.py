"""The scripted model outputs of the feature tests: a chat request whose prompt contains a
trigger is answered with that exact text (tests/scripted_outputs.py, installed by tests/hooked_server.py).
Where triggers overlap, the one that occurs last in the prompt wins, then the longest."""
import json

# Seed 004's prompt; its answers depend on how the template ended the prompt (the test template,
# chat_template.jinja), so the non-thinking one is also proof that enable_thinking reached it.
SEED_PROMPT = "Give me a short introduction to large language models."
SEED_THOUGHT = "\nThe user wants a short introduction.\n"
SEED_ANSWER = "Large language models are neural networks trained on vast amounts of text."
# The Qwen function-calling guide's conversation (its calls and its final answer).
GUIDE_QUESTION = "What's the temperature in San Francisco now? How about tomorrow?"
GUIDE_CALLS = [("get_current_temperature", {"location": "San Francisco, CA, USA"}),
               ("get_temperature_date", {"location": "San Francisco, CA, USA", "date": "2024-10-01"})]
GUIDE_ANSWER = "It is 26.1°C in San Francisco now; tomorrow, 2024-10-01, it will be about 25.9°C."

WEATHER_ARGS = {"city": "Paris", "unit": "celsius"}
TWO_CALLS_ARGS = [{"city": "Zürich", "days": [1, 2], "opts": {"note": "say \"hi\"\n", "deep": {"x": [{}]}}},
                  {"query": "{not a block} </tool_call> inside a string"}]

SCRIPTS = {
    "SCRIPT:weather": 'I will look that up.\n\n<tool_call>\n{"name": "get_weather", "arguments": '
                      + json.dumps(WEATHER_ARGS) + "}\n</tool_call>",
    "SCRIPT:two_calls": "<tool_call>\n" + json.dumps({"name": "get_weather", "arguments": TWO_CALLS_ARGS[0]},
                                                     ensure_ascii=False)
                        + "\n</tool_call>\n<tool_call>\n"
                        + json.dumps({"name": "search", "arguments": TWO_CALLS_ARGS[1]}) + "\n</tool_call>",
    "SCRIPT:malformed": 'Checking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"\n</tool_call>',
    "SCRIPT:no_name": '<tool_call>\n{"arguments": {"city": "Paris"}}\n</tool_call>',
    "SCRIPT:plain": "The weather in Paris is sunny, 22 degrees.",
    "SCRIPT:after_tool": "It is 22 degrees in Paris.",
    "SCRIPT:greeting_thought": "<think>\nThe user wants a greeting.\nI should say hi.\n</think>\n\nHello there!",
    "SCRIPT:no_open_tag": "The user wants a greeting.\n</think>\n\nHello!",
    "SCRIPT:unfinished_thought": "<think>\nStill thinking about",
    "SCRIPT:think_then_tool": '<think>\nI need the weather tool.\n</think>\n\n<tool_call>\n{"name": "get_weather", '
                              '"arguments": ' + json.dumps(WEATHER_ARGS) + "}\n</tool_call>",
    "SCRIPT:no_thinking": "Just the answer, no <think> block here.",
    SEED_PROMPT + "<|im_end|>\n<|im_start|>assistant\n": f"<think>{SEED_THOUGHT}</think>\n\n{SEED_ANSWER}",
    SEED_PROMPT + "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n": SEED_ANSWER,
    GUIDE_QUESTION: "\n".join("<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"
                               for name, args in GUIDE_CALLS),
    '"temperature": 26.1': GUIDE_ANSWER,  # in the tool results of the guide's second turn
}
