"""The docs keep up with the code: every flag `ember serve --help` prints is in docs/server.md."""
import argparse
import os
import re

from ember.entrypoints.cli import build_parser
from tests.server.launcher import REPO_ROOT


def serve_flags() -> set[str]:
    (subparsers,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    serve = subparsers.choices["serve"]
    return {flag for action in serve._actions if action.help != argparse.SUPPRESS
            for flag in action.option_strings if flag not in ("-h", "--help")}


def test_every_serve_flag_is_documented_in_server_md():
    with open(os.path.join(REPO_ROOT, "docs", "server.md")) as f:
        doc = f.read()
    flags = serve_flags()
    assert len(flags) > 40  # the parser was found, with its flags
    missing = sorted(f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", doc))
    assert not missing, f"flags of `ember serve --help` missing from docs/server.md: {missing}"
