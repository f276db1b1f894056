"""`ember bench {throughput,latency,serve}`. The main `ember` CLI calls `register(subparsers)`; each
subcommand sets `func`, which the caller runs as `args.func(args)`. Runs standalone too:
`python -m ember.entrypoints.bench.cli throughput ...`."""
from __future__ import annotations

import argparse
import functools

from ember.entrypoints.bench import latency, serve, throughput


def register(subparsers) -> argparse.ArgumentParser:
    bench = subparsers.add_parser("bench", help="Benchmark Ember (or transformers) offline, or a server.",
                                  description="Benchmark Ember (or transformers) offline, or a server.")
    add_subcommands(bench)
    return bench


def add_subcommands(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="bench_command", metavar="{throughput,latency,serve}",
                                      required=True)
    for name, module in (("throughput", throughput), ("latency", latency), ("serve", serve)):
        module.add_parser(commands).set_defaults(func=functools.partial(_run, name, module.main))


def _run(name: str, main, args: argparse.Namespace) -> None:
    # Bad flags or a model/flag mismatch (ValueError, from here or the engine's config) read
    # as a one-line error, like argparse's own, not a traceback. Returns None, so a caller's
    # `sys.exit(args.func(args))` exits 0; the results are printed and in --output-json.
    try:
        main(args)
    except ValueError as e:
        raise SystemExit(f"ember bench {name}: error: {e}") from e


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ember bench",
                                     description="Benchmark Ember (or transformers) offline, or a server.")
    add_subcommands(parser)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    import logging

    # Standalone, show the engine's startup log (KV cache size, ready time) as `ember` would.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    main()
