"""Placeholders for tokens the previous step is still sampling: build_model_input says which
input rows take which of that step's rows, and a decode step of the same sequences in the same
order is one plain copy."""
import numpy as np
import torch

from ember.worker.input_batch import build_model_input
from ember.worker.step_input import PENDING_TOKEN, ScheduledChunk, StepInput

BLOCK_SIZE = 4


def model_input(chunks: list[ScheduledChunk], previous_seq_ids: list[int]):
    tables = np.arange(len(chunks) * 2, dtype=np.int32).reshape(len(chunks), 2)
    return build_model_input(StepInput(chunks), tables, BLOCK_SIZE, torch.device("cpu"), previous_seq_ids)


def decode(seq_id: int) -> ScheduledChunk:
    return ScheduledChunk(seq_id, [PENDING_TOKEN], 5, [], True)


def test_decode_of_the_same_sequences_in_order_is_one_copy():
    inp = model_input([decode(7), decode(9)], previous_seq_ids=[7, 9, 11])  # 11 finished meanwhile
    assert inp.pending_in_order and inp.pending_positions is None


def test_placeholders_among_prompt_chunks_name_their_rows():
    prefill = ScheduledChunk(5, [10, 11, 12], 0, [], True)
    inp = model_input([prefill, decode(7), decode(9)], previous_seq_ids=[9, 7])
    assert not inp.pending_in_order
    assert inp.pending_positions.tolist() == [3, 4]
    assert inp.pending_rows.tolist() == [1, 0]
    assert inp.input_ids[:3].tolist() == [10, 11, 12]


def test_a_reordered_batch_is_not_taken_in_order():
    inp = model_input([decode(9), decode(7)], previous_seq_ids=[7, 9])
    assert not inp.pending_in_order and inp.pending_rows.tolist() == [1, 0]


def test_no_placeholders_nothing_to_fill():
    inp = model_input([ScheduledChunk(5, [10, 11], 0, [], True)], previous_seq_ids=[])
    assert not inp.pending_in_order and inp.pending_positions is None
