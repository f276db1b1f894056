"""An engine core that fails mid-request: the stream ends with an error event and [DONE], new
requests get a 500 naming the cause, /health turns 503. The app is built in the test's
process; its core (in its own process) gets a step hook that raises after a few steps."""
import json

from starlette.testclient import TestClient

from ember.engine_args import EngineArgs
from ember.engine.async_engine import AsyncLLM
from ember.entrypoints.openai.api_server import build_app
from ember.entrypoints.openai.metrics import ServerMetrics
from ember.entrypoints.openai.serving import ServingContext
from tests.faults import FailAtStep


def test_a_failing_engine_fails_requests_loudly(tiny_checkpoint):
    config = EngineArgs(model=tiny_checkpoint, served_model_name=["tiny"]).resolve()
    llm = AsyncLLM(config, log_stats=False, before_step=FailAtStep(4, "injected fault"))
    app = build_app(ServingContext.for_engine(llm), ServerMetrics("tiny"))
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
