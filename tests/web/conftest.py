"""Browser tests of the chat page (ember/entrypoints/web/): Debian's chromium, driven by
Playwright for Python (no browser download), against real `ember serve` processes on loopback
started by tests/server/launcher.py: `tiny` (a tiny random Llama with a 4096-token context, so
a long reply lasts long enough to be stopped) and `keyed` (the same behind --api-key)."""
from __future__ import annotations

import os

import pytest

from tests.server.launcher import REPO_ROOT, ServerProcess, serve_command
from tests.tiny_models import build_tiny_checkpoint

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = os.path.join(REPO_ROOT, "test-artifacts")
TINY_NAME = "tiny"
MAX_MODEL_LEN = 4096
API_KEY = "sk-ember-web-test"


@pytest.fixture(scope="session")
def browser():
    """One headless chromium (Playwright gives it a fresh profile); skipped only where it cannot run."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing (`make test` installs Debian's chromium; as root: "
                    "apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install -e '.[test]')")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A tab in a context of its own (empty localStorage); a JavaScript error on the page fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="light")
    context.set_default_timeout(30_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="session")
def web_servers(tmp_path_factory):
    checkpoint = build_tiny_checkpoint(str(tmp_path_factory.mktemp("web-llama")), "llama",
                                       max_position_embeddings=MAX_MODEL_LEN)
    logs = tmp_path_factory.mktemp("web-server-logs")
    started = {
        "tiny": ServerProcess(serve_command(checkpoint, "--served-model-name", TINY_NAME,
                                            "--disable-log-requests"), str(logs / "tiny.log")),
        "keyed": ServerProcess(serve_command(checkpoint, "--served-model-name", TINY_NAME, "--api-key", API_KEY,
                                             "--disable-log-requests"), str(logs / "keyed.log")),
    }
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture(scope="session")
def tiny_server(web_servers) -> ServerProcess:
    return web_servers["tiny"].wait_ready()


@pytest.fixture(scope="session")
def keyed_server(web_servers) -> ServerProcess:
    return web_servers["keyed"].wait_ready()


@pytest.fixture(scope="session")
def artifacts() -> str:
    os.makedirs(ARTIFACTS, exist_ok=True)
    return ARTIFACTS
