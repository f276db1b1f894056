"""`ember serve` starts its engine core process before its own imports (ember/engine/core_prestart.py):
the server then drives that very process, and a start that fails before the engine leaves none."""
from __future__ import annotations

import os

import pytest

from ember.engine import core_prestart
from ember.entrypoints import cli
from tests.processes import cmdline, descendants


def _cores() -> list[int]:
    return [pid for pid in descendants(os.getpid()) if "ember.engine.core_process" in cmdline(pid)]


def test_a_bad_flag_kills_the_prestarted_core():
    before = _cores()
    with pytest.raises(SystemExit):
        cli.main(["serve", "--no-such-flag"])
    assert not core_prestart.has_prestarted_core()
    assert _cores() == before


def test_the_next_core_is_the_prestarted_one():
    before = set(_cores())
    core_prestart.prestart_core()
    (started,) = set(_cores()) - before
    proc, lifeline = core_prestart.take_core()  # what CoreProcess calls
    try:
        assert proc.pid == started and not core_prestart.has_prestarted_core()
    finally:
        proc.kill()
        proc.wait()
        lifeline.close()
