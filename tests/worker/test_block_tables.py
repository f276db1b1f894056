"""The worker's persistent block tables: appended to step by step, cleared on preemption,
rows reused after a sequence finishes, and gathered in any order."""
import numpy as np

from ember.worker.block_tables import BlockTables


def test_appends_accumulate_and_gather_pads_to_the_longest_row():
    tables = BlockTables(max_blocks_per_seq=8, num_rows=2)
    tables.append(7, [3, 4])
    tables.append(9, [10])
    tables.append(7, [5])
    assert tables.gather([9, 7]).tolist() == [[10, 0, 0], [3, 4, 5]]


def test_a_preempted_sequence_starts_its_table_anew():
    tables = BlockTables(max_blocks_per_seq=8)
    tables.append(1, [3, 4, 5])
    tables.clear(1)
    tables.append(1, [8])
    assert tables.gather([1]).tolist() == [[8]]


def test_rows_of_finished_sequences_are_reused_and_the_table_grows_when_full():
    tables = BlockTables(max_blocks_per_seq=4, num_rows=2)
    for seq_id in range(5):
        tables.append(seq_id, [seq_id + 100])
    tables.remove(0)
    tables.append(5, [105])
    assert len(tables.table) == 8 and len(tables.row_of) == 5
    assert np.array_equal(tables.gather([5, 4, 1]), [[105], [104], [101]])
