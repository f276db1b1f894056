"""Batches asking only temperature take the one-pass Gumbel-max kernel on the GPU; anything else
(top-k/p, min-p, penalties, logprobs, per-request seeds...) takes the general sampler."""
import pytest
import torch

from ember.worker.sampler import SamplingBatch, only_temperature, sample


def _batch(n=4, **fields):
    return SamplingBatch(temperature=torch.full((n,), 0.8), top_k=None, top_p=None, min_p=None, **fields)


def test_only_temperature_batches_are_recognised():
    assert only_temperature(_batch())
    assert not only_temperature(_batch(want_logprobs=True))
    assert not only_temperature(_batch(generators={0: torch.Generator()}))
    assert not only_temperature(_batch(repetition_penalty=torch.ones(4)))
    batch = _batch()
    batch.top_p = torch.full((4,), 0.9)
    assert not only_temperature(batch)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_fast_path_is_reproducible_for_a_seed_and_keeps_greedy_rows():
    logits = torch.randn(8, 151936, device="cuda")
    b = SamplingBatch(temperature=torch.tensor([0.0, 1.0] * 4, device="cuda"), top_k=None, top_p=None, min_p=None)

    def draw(seed):
        return sample(logits, b, torch.Generator(device="cuda").manual_seed(seed)).token_ids

    assert torch.equal(draw(1), draw(1))
    assert not torch.equal(draw(1)[1::2], draw(2)[1::2])
    assert torch.equal(draw(1)[0::2], logits.argmax(dim=-1)[0::2])
