"""Running the seed documents' snippets against a test server: curl commands through bash,
Python through exec, with names and the port rewritten by the caller's `replacements`."""
from __future__ import annotations

import contextlib
import io
import json
import subprocess

# The client set-up the seeds' Python examples (000, 004) open with, verbatim.
SEED_CLIENT_PREAMBLE = '''
from openai import OpenAI
# Set OpenAI's API key and API base to use vLLM's API server.
openai_api_key = "EMPTY"
openai_api_base = "http://localhost:8000/v1"

client = OpenAI(
    api_key=openai_api_key,
    base_url=openai_api_base,
)
'''


def adapt(snippet: str, url: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        snippet = snippet.replace(old, new)
    return snippet.replace("http://localhost:8000", url)


def run_curl(snippet: str, url: str, replacements: dict[str, str]) -> dict:
    """The JSON body curl printed (curl is part of the machine: a missing one fails the test)."""
    result = subprocess.run(["bash", "-c", adapt(snippet, url, replacements) + " --silent --show-error"],
                            capture_output=True, text=True, timeout=120, check=True)
    return json.loads(result.stdout)


def run_python(snippet: str, url: str, replacements: dict[str, str]) -> tuple[str, dict]:
    """What the snippet printed, and the variables it left."""
    scope: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(adapt(snippet, url, replacements), "<seed>", "exec"), scope)
    return out.getvalue(), scope
