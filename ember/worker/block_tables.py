"""Every running sequence's block table, kept by the worker across steps (vLLM's persistent
batch): the scheduler sends a sequence's blocks once, then only those it appended since, so the
host work of a step grows with what changed, not with sequences x context."""
from __future__ import annotations

import numpy as np


class BlockTables:
    def __init__(self, max_blocks_per_seq: int, num_rows: int = 64):
        self.table = np.zeros((num_rows, max_blocks_per_seq), dtype=np.int32)
        self.lengths = np.zeros(num_rows, dtype=np.int64)
        self.row_of: dict[int, int] = {}
        self._free_rows = list(range(num_rows - 1, -1, -1))

    def append(self, seq_id: int, block_ids: list[int]) -> None:
        row = self.row_of.get(seq_id)
        if row is None:
            row = self.row_of[seq_id] = self._take_row()
        n = int(self.lengths[row])
        self.table[row, n:n + len(block_ids)] = block_ids
        self.lengths[row] = n + len(block_ids)

    def clear(self, seq_id: int) -> None:
        """The sequence lost its blocks (preempted); it keeps its row for when it resumes."""
        row = self.row_of.get(seq_id)
        if row is not None:
            self.lengths[row] = 0

    def remove(self, seq_id: int) -> None:
        row = self.row_of.pop(seq_id, None)
        if row is not None:
            self.lengths[row] = 0
            self._free_rows.append(row)

    def gather(self, seq_ids: list[int]) -> np.ndarray:
        """The tables of `seq_ids`, one row each, as wide as the longest of them."""
        rows = np.fromiter((self.row_of[s] for s in seq_ids), dtype=np.int64, count=len(seq_ids))
        width = max(1, int(self.lengths[rows].max()))
        return self.table[rows, :width]

    def _take_row(self) -> int:
        if not self._free_rows:
            grown = len(self.table)
            self.table = np.concatenate([self.table, np.zeros_like(self.table)])
            self.lengths = np.concatenate([self.lengths, np.zeros_like(self.lengths)])
            self._free_rows = list(range(2 * grown - 1, grown - 1, -1))
        return self._free_rows.pop()
