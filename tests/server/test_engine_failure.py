"""An engine loop that fails mid-request: the stream ends with an error event and [DONE], new
requests get a 500 naming the cause, /health turns 503. Built in-process, with a step that
raises after a few successful ones."""
import json

from starlette.testclient import TestClient

from ember.config import EngineConfig
from ember.engine.async_engine import AsyncLLM
from ember.engine.llm_engine import LLMEngine
from ember.entrypoints.openai.api_server import build_app
from ember.entrypoints.openai.metrics import ServerMetrics
from ember.entrypoints.openai.serving import ServingContext


def test_a_failing_engine_fails_requests_loudly(tiny_checkpoint):
    engine = LLMEngine(EngineConfig(model=tiny_checkpoint, served_model_name=["tiny"]))
    real_step, calls = engine.step, []

    def failing_step():
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("injected fault")
        return real_step()

    engine.step = failing_step
    app = build_app(ServingContext.for_engine(AsyncLLM(engine, log_stats=False)), ServerMetrics("tiny"))
    body = {"prompt": "Hello", "max_tokens": 50, "ignore_eos": True, "stream": True}
    with TestClient(app) as http:
        with http.stream("POST", "/v1/completions", json=body) as response:
            assert response.status_code == 200
            blocks = [b for b in response.read().decode().split("\n\n") if b]
        assert blocks[-1] == "data: [DONE]"
        error = json.loads(blocks[-2][len("data: "):])["error"]
        assert error["code"] == 500 and "injected fault" in error["message"]
        assert http.get("/health").status_code == 503
        refused = http.post("/v1/completions", json={**body, "stream": False})
        assert refused.status_code == 500 and "injected fault" in refused.json()["error"]["message"]
