"""`ember serve` with test hooks installed (`python -m tests.hooked_server [--fail-at-step N]
[--scripted-outputs FILE] -- SERVE_ARGS...`): the real server, given through its constructor
arguments what the reliability and feature tests inject. Nothing in the product reads a test
switch from the environment."""
from __future__ import annotations

import argparse
import json
import sys

from ember.entrypoints.commands import serve
from ember.entrypoints.openai.api_server import ServerHooks
from tests.faults import FailAtStep
from tests.scripted_outputs import ScriptedOutputs


def main() -> None:
    hooks_parser = argparse.ArgumentParser(prog="python -m tests.hooked_server")
    hooks_parser.add_argument("--fail-at-step", type=int, help="steps from this one on raise in the engine core")
    hooks_parser.add_argument("--scripted-outputs", help="a JSON file of {trigger: output text}")
    split = sys.argv.index("--")
    hooks = hooks_parser.parse_args(sys.argv[1:split])
    serve_parser = argparse.ArgumentParser(prog="ember serve")
    serve.add_arguments(serve_parser)
    args = serve_parser.parse_args(sys.argv[split + 1:])
    scripts = None
    if hooks.scripted_outputs:
        with open(hooks.scripted_outputs, encoding="utf-8") as f:
            scripts = ScriptedOutputs(json.load(f))
    serve.run(args, ServerHooks(before_step=FailAtStep(hooks.fail_at_step) if hooks.fail_at_step else None,
                                 chat_constraint=scripts))


if __name__ == "__main__":
    main()
