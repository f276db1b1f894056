"""StepInput -> the flat tensors one forward pass takes: token ids, positions, cache slots and
attention metadata, built with numpy rather than per-token Python loops."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import torch

from ember.models.layers.attention import AttentionMetadata
from ember.worker.host_copy import to_device
from ember.worker.step_input import PENDING_TOKEN, StepInput


@dataclass
class ModelInput:
    input_ids: torch.Tensor
    positions: torch.Tensor
    attention: AttentionMetadata
    logits_indices: torch.Tensor       # rows of the hidden states to sample from
    sampled_seq_ids: list[int]         # the sequence of each of those rows
    query_start_loc: np.ndarray        # host copy, for prompt logprobs
    # Placeholders (PENDING_TOKEN) to fill from the previous step's sampled tokens: input row
    # pending_positions[i] takes that step's row pending_rows[i] (both None when there are none).
    # pending_in_order: every input row i takes that step's row i (the usual decode step; both
    # tensors then None), one copy.
    pending_positions: torch.Tensor | None = None
    pending_rows: torch.Tensor | None = None
    pending_in_order: bool = False


def build_model_input(step: StepInput, block_tables: np.ndarray, block_size: int,
                      device: torch.device, previous_seq_ids: Sequence[int] = ()) -> ModelInput:
    """`block_tables`: one row per chunk, in chunk order (BlockTables.gather).
    `previous_seq_ids`: the sequence of each row the previous step sampled, whose tokens fill
    this step's placeholders."""
    chunks = step.chunks
    query_lens = np.fromiter((len(c.token_ids) for c in chunks), dtype=np.int64, count=len(chunks))
    starts = np.fromiter((c.start_position for c in chunks), dtype=np.int64, count=len(chunks))
    query_start_loc = np.zeros(len(chunks) + 1, dtype=np.int64)
    np.cumsum(query_lens, out=query_start_loc[1:])
    num_tokens = int(query_start_loc[-1])
    seq_lens = starts + query_lens
    seq_of_token = np.repeat(np.arange(len(chunks)), query_lens)
    positions = np.arange(num_tokens) - np.repeat(query_start_loc[:-1] - starts, query_lens)
    max_blocks = block_tables.shape[1]
    slots = block_tables[seq_of_token, positions // block_size].astype(np.int64) * block_size + positions % block_size
    sampled = [i for i, c in enumerate(chunks) if c.sample]
    input_ids = np.fromiter(chain.from_iterable(c.token_ids for c in chunks), dtype=np.int64, count=num_tokens)

    sampled_seq_ids = [chunks[i].seq_id for i in sampled]
    # A placeholder is always its chunk's last token.
    last_of_chunk = query_start_loc[1:] - 1
    pending_chunks = np.flatnonzero(input_ids[last_of_chunk] == PENDING_TOKEN)
    # Every row a placeholder, for the previous step's rows in the same order: a plain copy.
    in_order = len(pending_chunks) == num_tokens and sampled_seq_ids == list(previous_seq_ids[:num_tokens])
    pending_positions = pending_rows = np.zeros(0, dtype=np.int64)
    if len(pending_chunks) and not in_order:
        row_of = {seq_id: row for row, seq_id in enumerate(previous_seq_ids)}
        pending_positions = last_of_chunk[pending_chunks]
        pending_rows = np.fromiter((row_of[chunks[i].seq_id] for i in pending_chunks), dtype=np.int64,
                                   count=len(pending_chunks))

    # Two host-to-device copies in all (one per dtype) rather than one per array.
    logits_indices = query_start_loc[1:][sampled] - 1
    wide, (input_ids_d, positions_d, slots_d, logits_indices_d, pending_positions_d, pending_rows_d) = _packed(
        [input_ids, positions, slots, logits_indices, pending_positions, pending_rows], np.int64, device)
    narrow, (query_start_loc_d, seq_lens_d, block_tables_d) = _packed(
        [query_start_loc, seq_lens, block_tables.ravel()], np.int32, device)
    S = len(chunks)
    meta = AttentionMetadata(
        slot_mapping=slots_d, query_start_loc=query_start_loc_d, seq_lens=seq_lens_d,
        block_tables=block_tables_d.view(S, max_blocks),
        max_query_len=int(query_lens.max()), max_seq_len=int(seq_lens.max()))
    scattered = len(pending_positions) > 0
    return ModelInput(
        input_ids=input_ids_d, positions=positions_d, attention=meta, logits_indices=logits_indices_d,
        sampled_seq_ids=sampled_seq_ids, query_start_loc=query_start_loc,
        pending_positions=pending_positions_d if scattered else None,
        pending_rows=pending_rows_d if scattered else None, pending_in_order=in_order)


_ALIGN_BYTES = 16


def _packed(arrays: list[np.ndarray], dtype, device: torch.device) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The arrays in one device buffer (one copy), each starting 16-byte aligned. Triton
    specializes a kernel on whether each pointer argument is 16-byte aligned: were the offsets
    to follow the batch's sizes, a batch of another parity would compile new kernel variants
    while requests wait (a second or so on the H200)."""
    align = _ALIGN_BYTES // np.dtype(dtype).itemsize
    offsets, total = [], 0
    for a in arrays:
        offsets.append(total)
        total += -(-len(a) // align) * align
    host = np.zeros(total, dtype=dtype)
    for a, start in zip(arrays, offsets):
        host[start:start + len(a)] = a
    buffer = to_device(host, device)
    return buffer, [buffer[start:start + len(a)] for a, start in zip(arrays, offsets)]
