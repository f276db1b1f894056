import torch

from ember.models.layers.kernels import TORCH
from ember.models.llama import LlamaForCausalLM
from tests.tiny_models import tiny_config


def test_logits_written_into_a_float32_buffer_equal_the_returned_ones():
    """A decode graph's static logits buffer is filled straight from the LM head's product."""
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_config("qwen2", vocab_size=50), 64, TORCH).to(torch.bfloat16)
    for p in model.parameters():
        p.data.normal_(0, 0.1)
    hidden = torch.randn(3, model.config.hidden_size, dtype=torch.bfloat16)
    buffer = torch.full((5, 50), float("nan"))
    out = model.compute_logits(hidden, out=buffer[:3])
    assert out.data_ptr() == buffer.data_ptr() and out.dtype == torch.float32
    assert torch.equal(buffer[:3], model.compute_logits(hidden))
    assert buffer[3:].isnan().all()
