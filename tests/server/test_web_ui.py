"""The chat page at / (ember/entrypoints/web/index.html, when present), built in-process."""
import pytest
from starlette.testclient import TestClient

from ember.engine_args import EngineArgs
from ember.engine.async_engine import AsyncLLM
from ember.entrypoints.openai import api_server
from ember.entrypoints.openai.metrics import ServerMetrics
from ember.entrypoints.openai.serving import ServingContext


@pytest.fixture(scope="module")
def config(tiny_checkpoint):
    return EngineArgs(model=tiny_checkpoint, served_model_name=["tiny"]).resolve()


@pytest.fixture
def web_dir(tmp_path, monkeypatch):
    (tmp_path / "index.html").write_text("<html>chat</html>")
    (tmp_path / "app.js").write_text("console.log('hi')")
    monkeypatch.setattr(api_server, "WEB_DIR", tmp_path)
    return tmp_path


def client_for(config, **options) -> TestClient:
    llm = AsyncLLM(config, log_stats=False)
    return TestClient(api_server.build_app(ServingContext.for_engine(llm), ServerMetrics("tiny"), **options))


def test_page_and_its_files_are_served_and_public(config, web_dir):
    with client_for(config, api_key="secret") as http:
        assert http.get("/").text == "<html>chat</html>"
        assert http.get("/app.js").text == "console.log('hi')"
        assert http.get("/v1/models").status_code == 401
        assert http.get("/missing.js").status_code == 401  # not a file of the page: the key is needed
        assert http.get("/v1/models", headers={"Authorization": "Bearer secret"}).status_code == 200


def test_disable_web_ui_leaves_the_root_free(config, web_dir):
    with client_for(config, web_ui=False) as http:
        response = http.get("/")
        assert response.status_code == 404 and response.json()["error"]["code"] == 404
