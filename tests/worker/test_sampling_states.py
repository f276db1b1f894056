"""SamplingStates.batch reuses its rows' settings while the batch stays the same sequences in
the same order, and rebuilds them as soon as it changes."""
import torch

from ember.sampling_params import SamplingParams
from ember.worker.sampling_state import SamplingStates
from ember.worker.step_input import NewSequence

VOCAB = 32


def states_with(*params: SamplingParams) -> SamplingStates:
    states = SamplingStates(torch.device("cpu"), VOCAB)
    for seq_id, p in enumerate(params):
        states.add(NewSequence(seq_id, [1, 2, 3], p, p.seed))
    return states


def test_rows_follow_the_batch_as_it_changes():
    states = states_with(SamplingParams(temperature=0.5), SamplingParams(temperature=0.0),
                         SamplingParams(temperature=1.0, top_p=0.5))
    first = states.batch([0, 1])
    again = states.batch([0, 1])
    assert again.temperature is first.temperature  # the same step's settings, not copied again
    assert again.top_p is None and not again.all_greedy
    assert states.batch([1, 0]).temperature.tolist() == [0.0, 0.5]
    shrunk = states.batch([1])
    assert shrunk.all_greedy and shrunk.temperature.tolist() == [0.0]
    grown = states.batch([0, 1, 2])
    assert grown.top_p.tolist() == [1.0, 1.0, 0.5]


def test_min_tokens_bans_stop_tokens_only_while_a_row_is_short_of_it():
    states = states_with(SamplingParams(min_tokens=2, stop_token_ids=[7]), SamplingParams())
    assert states.batch([0, 1]).banned == [(0, [7])]
    states.states[0].output_token_ids += [5, 6]
    assert states.batch([0, 1]).banned is None


def test_penalty_counts_are_of_the_outputs_so_far():
    states = states_with(SamplingParams(frequency_penalty=0.5))
    states.states[0].output_token_ids.append(4)
    assert states.batch([0]).output_counts[0, 4] == 1
    states.states[0].output_token_ids.append(4)
    assert states.batch([0]).output_counts[0, 4] == 2
