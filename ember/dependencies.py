"""Optional dependencies: the extra that installs each, and the one-line error that names it.
Everything the server and structured output need is a default dependency; these are not."""
from __future__ import annotations

import importlib.util

# Top-level module -> the extra of `pip install 'ember[EXTRA]'` that brings it.
EXTRAS = {"ray": "ray", "modelscope": "modelscope", "triton": "gpu"}


class MissingDependency(ImportError):
    """An optional package that a chosen feature needs is not installed. Its message is one
    line, meant to be shown as is (the CLI prints it without a traceback)."""


def install_hint(module: str) -> str | None:
    extra = EXTRAS.get(module.partition(".")[0])
    return None if extra is None else f"pip install 'ember[{extra}]'"


def require(module: str, feature: str) -> None:
    """Raise MissingDependency, naming the extra to install, unless `module` is installed.
    Looks without importing: callers import it where they use it."""
    if importlib.util.find_spec(module) is None:
        raise MissingDependency(f"{feature} needs the `{module}` package, which is not installed: "
                                f"{install_hint(module)}")
