"""The `ember` command: one subcommand per module, each exposing `register(subparsers)` that
adds its parser and sets `func`. Optional modules (`ember bench`) are picked up when present."""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from ember import __version__
from ember.dependencies import MissingDependency, install_hint

_COMMANDS = ["ember.entrypoints.commands.serve", "ember.entrypoints.commands.generate",
             "ember.entrypoints.commands.chat"]
_OPTIONAL_COMMANDS = ["ember.entrypoints.bench.cli"]


def _exists(module: str) -> bool:
    # find_spec imports the parents, so a missing parent package means "absent" too.
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ember", description="Ember: LLM inference and serving with "
                                     "vLLM's interface.")
    parser.add_argument("--version", action="version", version=f"ember {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _COMMANDS + [m for m in _OPTIONAL_COMMANDS if _exists(m)]:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if words[:1] != ["serve"] or {"-h", "--help"} & set(words):
        return _run(argv)
    from ember.engine.core_prestart import discard_prestarted_cores, prestart_core

    prestart_core()  # the engine core imports torch and the model code meanwhile
    try:
        return _run(argv)
    finally:
        discard_prestarted_cores()  # a bad flag: the server never took it


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except MissingDependency as e:
        raise SystemExit(f"error: {e}") from None
    except ModuleNotFoundError as e:  # an optional package a feature imported without asking first
        if e.name is None or install_hint(e.name) is None:
            raise
        raise SystemExit(f"error: the `{e.name}` package is not installed: {install_hint(e.name)}") from None


if __name__ == "__main__":
    sys.exit(main())
