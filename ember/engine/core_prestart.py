"""An engine core process started before its config exists: `ember serve` starts it first thing,
so that the child's imports (torch and the model code: seconds on a small CPU) run while the
server imports its own modules and reads the checkpoint's config; the server's CoreProcess then
takes it and sends it the config. Light to import on purpose (no torch), so it can run first."""
from __future__ import annotations

import subprocess
from multiprocessing.connection import Connection

from ember.child_process import start_child

CORE_MODULE = "ember.engine.core_process"

# Started and not yet taken, oldest first.
_prestarted: list[tuple[subprocess.Popen, Connection]] = []


def prestart_core() -> None:
    _prestarted.append(start_child(CORE_MODULE))


def has_prestarted_core() -> bool:
    return bool(_prestarted)


def take_core() -> tuple[subprocess.Popen, Connection]:
    """A pre-started core process and its socket pair, or a new one."""
    return _prestarted.pop(0) if _prestarted else start_child(CORE_MODULE)


def discard_prestarted_cores() -> None:
    """Kill the pre-started cores nothing took (start-up failed before the engine): they hold no
    state yet, only imports."""
    while _prestarted:
        proc, lifeline = _prestarted.pop()
        proc.kill()
        proc.wait()
        lifeline.close()
