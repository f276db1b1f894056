"""One request as the engine core tracks it: its n sample sequences."""
from __future__ import annotations

from dataclasses import dataclass

from ember.engine.sequence import Sequence


@dataclass
class CoreRequest:
    request_id: str
    seqs: list[Sequence]
    num_finished: int = 0

    @property
    def finished(self) -> bool:
        return self.num_finished == len(self.seqs)
