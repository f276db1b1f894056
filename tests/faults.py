"""Faults the tests inject into a real engine, through the engine core's `before_step` hook
(a constructor argument: nothing in the product reads a test switch). Picklable, so they reach
a core running in its own process."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FailAtStep:
    """Make step `step` (counted from 1 after start-up) and every later one raise, as a failing
    model forward would."""
    step: int
    message: str = "Injected engine fault"

    def __call__(self, step: int) -> None:
        if step >= self.step:
            raise RuntimeError(f"{self.message} at step {step}")
