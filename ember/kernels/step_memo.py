"""Values that every layer of one forward pass would derive alike from the step's tensors (the
decode attention's slot index and length mask, the rotary's cos/sin rows, whether any KV slot is
padding), derived once per step instead of once per layer: on the CPU each op costs a few us of
dispatch, and SmolLM2 has 30 layers.

A memo holds one entry, keyed by the identity of the step's tensors (a new step builds new
ones; the entry keeps them alive, so an id is never reused while it is held) and by plain
values compared by equality."""
from __future__ import annotations

from typing import Callable


class StepMemo:
    def __init__(self, build: Callable):
        self.build = build
        self._tensors: tuple = ()
        self._values: tuple = ()
        self._result = None

    def __call__(self, tensors: tuple, values: tuple = ()):
        if (len(tensors) != len(self._tensors) or values != self._values
                or any(a is not b for a, b in zip(tensors, self._tensors))):
            self._result = self.build(*tensors, *values)
            self._tensors, self._values = tensors, values
        return self._result
