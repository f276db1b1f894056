"""The seed documents' examples of thinking / non-thinking requests (seed 004, run as written
against `ember serve ... --enable-reasoning-parser --reasoning-parser deepseek_r1`, the seed's
own command), the tool-use flow of the Qwen function-calling guide the seeds point to, and the
guided_json / response_format shapes of vLLM's documentation that they point to as well.

Changed: the model name, the port and max_tokens (the test model's context is 1,024 tokens).
The model's answers are scripted (scripts.py)."""
from __future__ import annotations

import json

import jsonschema
import pytest
from pydantic import BaseModel

from tests.features.conftest import MODEL
from tests.features.scripts import GUIDE_ANSWER, GUIDE_CALLS, GUIDE_QUESTION, SEED_ANSWER, SEED_THOUGHT
from tests.seed_snippets import SEED_CLIENT_PREAMBLE, run_curl, run_python

# Seed 004, blocks [4]-[7], verbatim.
THINKING_CURL = """curl http://localhost:8000/v1/chat/completions -H "Content-Type: application/json" -d '{
  "model": "Qwen/Qwen3-8B",
  "messages": [
    {"role": "user", "content": "Give me a short introduction to large language models."}
  ],
  "temperature": 0.6,
  "top_p": 0.95,
  "top_k": 20,
  "max_tokens": 32768
}'"""

THINKING_PYTHON = SEED_CLIENT_PREAMBLE + '''
chat_response = client.chat.completions.create(
    model="Qwen/Qwen3-8B",
    messages=[
        {"role": "user", "content": "Give me a short introduction to large language models."},
    ],
    temperature=0.6,
    top_p=0.95,
    top_k=20,
    max_tokens=32768,
)
print("Chat response:", chat_response)
'''

NON_THINKING_CURL = """curl http://localhost:8000/v1/chat/completions -H "Content-Type: application/json" -d '{
  "model": "Qwen/Qwen3-8B",
  "messages": [
    {"role": "user", "content": "Give me a short introduction to large language models."}
  ],
  "temperature": 0.7,
  "top_p": 0.8,
  "top_k": 20,
  "max_tokens": 8192,
  "presence_penalty": 1.5,
  "chat_template_kwargs": {"enable_thinking": false}
}'"""

NON_THINKING_PYTHON = SEED_CLIENT_PREAMBLE + '''
chat_response = client.chat.completions.create(
    model="Qwen/Qwen3-8B",
    messages=[
        {"role": "user", "content": "Give me a short introduction to large language models."},
    ],
    temperature=0.7,
    top_p=0.8,
    top_k=20,
    presence_penalty=1.5,
    extra_body={"chat_template_kwargs": {"enable_thinking": False}},
)
print("Chat response:", chat_response)
'''


# The test model's context is 1,024 tokens.
CHANGES = {'"Qwen/Qwen3-8B"': f'"{MODEL}"', "32768": "200", "8192": "200"}


def curl(snippet: str, url: str) -> dict:
    return run_curl(snippet, url, CHANGES)


def python(snippet: str, url: str):
    """What the snippet printed, and its chat_response."""
    printed, scope = run_python(snippet, url, CHANGES)
    return printed, scope["chat_response"]


@pytest.fixture(scope="module")
def url(reasoning_server) -> str:
    return reasoning_server.url


def test_thinking_mode(url):
    message = curl(THINKING_CURL, url)["choices"][0]["message"]
    assert (message["reasoning_content"], message["content"]) == (SEED_THOUGHT, "\n\n" + SEED_ANSWER)
    # Today's openai client refuses top_k as a keyword before sending anything (SEEDS.md);
    # a user moves it to extra_body.
    with pytest.raises(TypeError, match="top_k"):
        python(THINKING_PYTHON, url)
    printed, response = python(THINKING_PYTHON.replace("top_k=20,", 'extra_body={"top_k": 20},'), url)
    assert printed.startswith("Chat response: ChatCompletion(")
    message = response.choices[0].message
    assert (message.reasoning_content, message.content) == (SEED_THOUGHT, "\n\n" + SEED_ANSWER)


def test_non_thinking_mode(url):
    # The scripted answer without a <think> block comes only when the template closed the
    # block: enable_thinking reached it. All of it is content, even with deepseek_r1.
    message = curl(NON_THINKING_CURL, url)["choices"][0]["message"]
    assert (message.get("reasoning_content"), message["content"]) == (None, SEED_ANSWER)
    snippet = NON_THINKING_PYTHON.replace("    top_k=20,\n", "").replace(
        '"chat_template_kwargs"', '"top_k": 20, "chat_template_kwargs"')
    printed, response = python(snippet, url)
    assert printed.startswith("Chat response: ChatCompletion(")
    message = response.choices[0].message
    assert (getattr(message, "reasoning_content", None), message.content) == (None, SEED_ANSWER)


# The Qwen function-calling guide's tools and conversation (its vLLM section).
GUIDE_TOOLS = [
    {"type": "function", "function": {
        "name": "get_current_temperature", "description": "Get current temperature at a location.",
        "parameters": {"type": "object", "properties": {
            "location": {"type": "string", "description": 'The location to get the temperature for, in the format '
                                                          '"City, State, Country".'},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"],
                     "description": 'The unit to return the temperature in. Defaults to "celsius".'}},
            "required": ["location"]}}},
    {"type": "function", "function": {
        "name": "get_temperature_date", "description": "Get temperature at a location and date.",
        "parameters": {"type": "object", "properties": {
            "location": {"type": "string", "description": 'The location to get the temperature for, in the format '
                                                          '"City, State, Country".'},
            "date": {"type": "string", "description": 'The date to get the temperature for, in the format '
                                                      '"Year-Month-Day".'},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"],
                     "description": 'The unit to return the temperature in. Defaults to "celsius".'}},
            "required": ["location", "date"]}}},
]


def get_current_temperature(location: str, unit: str = "celsius"):
    return {"temperature": 26.1, "location": location, "unit": unit}


def get_temperature_date(location: str, date: str, unit: str = "celsius"):
    return {"temperature": 25.9, "location": location, "date": date, "unit": unit}


def test_the_function_calling_guide(tools_client):
    client = tools_client
    messages = [{"role": "system", "content": "You are Qwen, created by Alibaba Cloud. You are a helpful "
                                              "assistant.\n\nCurrent Date: 2024-09-30"},
                {"role": "user", "content": GUIDE_QUESTION}]
    sampling = dict(temperature=0.7, top_p=0.8, max_tokens=300, extra_body={"repetition_penalty": 1.05})
    response = client.chat.completions.create(model=MODEL, messages=messages, tools=GUIDE_TOOLS, **sampling)
    assert response.choices[0].finish_reason == "tool_calls"
    # As the guide does: the whole message (None fields included) back into the conversation,
    # then each call's result as a "tool" message.
    messages.append(response.choices[0].message.model_dump())
    functions = {"get_current_temperature": get_current_temperature, "get_temperature_date": get_temperature_date}
    calls = []
    for tool_call in messages[-1]["tool_calls"]:
        fn_args = json.loads(tool_call["function"]["arguments"])
        calls.append((tool_call["function"]["name"], fn_args))
        fn_res = json.dumps(functions[tool_call["function"]["name"]](**fn_args))
        messages.append({"role": "tool", "content": fn_res, "tool_call_id": tool_call["id"]})
    assert calls == GUIDE_CALLS
    response = client.chat.completions.create(model=MODEL, messages=messages, tools=GUIDE_TOOLS, **sampling)
    assert response.choices[0].message.content == GUIDE_ANSWER
    assert response.choices[0].finish_reason == "stop"


class CarDescription(BaseModel):
    brand: str
    model: str
    car_type: str


def test_vllm_structured_output_examples(tools_client):
    # vLLM's documentation: guided_choice, and a pydantic model's schema as guided_json. (Greedy:
    # this test model, sampled, can wander inside a string for longer than its max_tokens.)
    completion = tools_client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Classify this sentiment: vLLM is wonderful!"}],
        extra_body={"guided_choice": ["positive", "negative"]})
    assert completion.choices[0].message.content in ("positive", "negative")
    schema = CarDescription.model_json_schema()
    completion = tools_client.chat.completions.create(
        model=MODEL, max_tokens=200, temperature=0,
        messages=[{"role": "user", "content": "Generate a JSON with the brand, model and car_type of the most "
                                              "iconic car from the 90's"}],
        extra_body={"guided_json": schema})
    jsonschema.validate(json.loads(completion.choices[0].message.content), schema)
    # The openai client's own structured-output helper: response_format from a pydantic model
    # (a strict json_schema), read back into the model.
    parsed = tools_client.chat.completions.parse(
        model=MODEL, max_tokens=200, temperature=0, response_format=CarDescription,
        messages=[{"role": "user", "content": "The most iconic car of the 90's, as JSON."}])
    assert isinstance(parsed.choices[0].message.parsed, CarDescription)
