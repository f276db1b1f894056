import torch

from ember.kernels.gumbel_sample import gumbel_sample, gumbel_sample_ref


def _seed(value, device):
    return torch.tensor([value], dtype=torch.int64, device=device)


def test_greedy_rows_are_argmax_with_first_index_on_ties(device):
    logits = torch.randn(3, 9000, device=device)
    logits[1, 17] = logits[1, 8500] = 50.0  # a tie: torch.argmax's first index wins
    tokens = gumbel_sample(logits, torch.zeros(3, device=device), _seed(0, device))
    assert tokens.dtype == torch.int64
    assert tokens.tolist() == logits.argmax(dim=-1).tolist() and int(tokens[1]) == 17


def test_same_seed_same_tokens_other_seed_other_tokens(device):
    logits = torch.zeros(4, 5000, device=device)  # uniform: any token, chosen only by the noise
    temperature = torch.ones(4, device=device)
    a = gumbel_sample(logits, temperature, _seed(7, device))
    assert torch.equal(a, gumbel_sample(logits, temperature, _seed(7, device)))
    assert not torch.equal(a, gumbel_sample(logits, temperature, _seed(8, device)))
    assert len(set(a.tolist())) > 1  # rows draw independently


def test_draws_follow_softmax_of_logits_over_temperature(device):
    """Many rows of the same small-vocabulary logits: the token frequencies are
    softmax(logits / T), as the torch reference's, and -inf tokens never come. (800 rows: the
    interpreter runs one program per row; 4 standard deviations of a frequency are ~0.07.)"""
    rows, temperature = 800, 0.5
    base = torch.tensor([1.0, 0.5, 0.0, -0.5, float("-inf"), 0.25])
    logits = base.repeat(rows, 1).to(device)
    tokens = gumbel_sample(logits, torch.full((rows,), temperature, device=device), _seed(3, device)).cpu()
    freq = torch.bincount(tokens, minlength=6).float() / rows
    expected = (base / temperature).softmax(-1)
    assert freq[4] == 0
    torch.testing.assert_close(freq, expected, atol=0.07, rtol=0)
    ref = gumbel_sample_ref(logits.cpu(), torch.full((rows,), temperature), torch.Generator().manual_seed(0))
    torch.testing.assert_close(torch.bincount(ref, minlength=6).float() / rows, expected, atol=0.07, rtol=0)


def test_mixed_batch_keeps_greedy_rows_greedy(device):
    logits = torch.randn(6, 3000, device=device)
    temperature = torch.tensor([0.0, 1.0, 0.0, 0.7, 0.0, 2.0], device=device)
    tokens = gumbel_sample(logits, temperature, _seed(11, device))
    greedy = logits.argmax(dim=-1)
    assert tokens[0::2].tolist() == greedy[0::2].tolist()
    assert ((tokens >= 0) & (tokens < 3000)).all()


def test_a_row_without_a_finite_logit_still_gets_a_token(device):
    logits = torch.full((2, 9000), float("-inf"), device=device)
    tokens = gumbel_sample(logits, torch.tensor([1.0, 0.0], device=device), _seed(5, device))
    assert tokens.tolist() == [0, 0]
