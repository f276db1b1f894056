"""The scripted model outputs of the feature tests: a chat request whose prompt contains a
trigger is answered with that exact text (EMBER_TEST_SCRIPTED_OUTPUTS, ember/structured/scripted.py)."""
import json

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
}
