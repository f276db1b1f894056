"""Decoder layers whose RMSNorms and SiLU-and-mul run in the one-row GEMV's prologue
(EMBER_GEMV_PROLOGUE=1) decode a token as the layers with the separate kernels do: the first
layer (no residual yet) and the next, for Llama, Qwen2 (qkv bias) and Qwen3 (q/k norm); and
the MLP under tensor parallelism (2 gloo ranks). The fold is for CUDA only; here Linear's choice
is widened to the CPU, where the kernels run in Triton's interpreter, and the folded layers get
norm and activation kernels that fail if called."""
import dataclasses

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from ember.distributed.parallel_state import destroy_tensor_parallel, init_tensor_parallel
from ember.kernels.activation import silu_and_mul_ref
from ember.kernels.qk_rotary_kv_write import qk_rotary_kv_write
from ember.kernels.rmsnorm import fused_add_rms_norm_ref
from ember.models.layers import linear
from ember.models.layers.attention import AttentionMetadata, attention_metadata
from ember.models.layers.kernels import TORCH
from ember.models.layers.rotary import RotaryEmbedding
from ember.models.layers.norm import RMSNorm
from ember.models.llama import MLP, DecoderLayer, LlamaForCausalLM, head_dim_of
from ember.models.qwen2 import Qwen2ForCausalLM
from tests.tiny_models import tiny_config


def _folds_on_any_device(layer, x):
    return layer.quant_method is None and x.dim() == 2 and x.shape[0] == 1


def _not_called(*args, **kwargs):
    raise AssertionError("folded into the GEMV's prologue: the separate kernel must not run")


SEPARATE = dataclasses.replace(TORCH, qk_rotary_kv_write=qk_rotary_kv_write)
FOLDED = dataclasses.replace(SEPARATE, rms_norm=_not_called, fused_add_rms_norm=_not_called,
                             silu_and_mul=_not_called)


def _layers(config, biases, qk_norm, kernels, device):
    torch.manual_seed(1)
    rope = RotaryEmbedding(config, head_dim_of(config), 256, kernels)
    layers = [DecoderLayer(config, rope, biases, qk_norm, kernels) for _ in range(2)]
    for layer in layers:
        for p in layer.parameters():
            p.data.uniform_(-0.3, 0.3) if p.dim() > 1 else p.data.uniform_(0.5, 1.5)
        layer.to(device)
        attn = layer.self_attn
        attn.attn.k_cache = torch.full((4, 4, attn.num_kv_heads, attn.head_dim), 0.25, device=device)
        attn.attn.v_cache = torch.full_like(attn.attn.k_cache, -0.5)
    return layers


def _decode_one_token(layers, x, device):
    """Both layers on one sequence's token at position 5 (5 tokens already cached)."""
    ints = dict(dtype=torch.int32, device=device)
    meta = AttentionMetadata(slot_mapping=torch.tensor([5], device=device),
                             query_start_loc=torch.tensor([0, 1], **ints), seq_lens=torch.tensor([6], **ints),
                             block_tables=torch.tensor([[0, 1]], **ints),
                             max_query_len=1, max_seq_len=6)
    outputs, residual = [], None
    with attention_metadata(meta):
        for layer in layers:
            x, residual = layer(torch.tensor([5], device=device), x, residual)
            outputs += [x, residual]
    return outputs


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3"])
def test_folded_layers_decode_as_the_separate_kernels(device, monkeypatch, family):
    config = tiny_config(family, vocab_size=64)
    model_class = Qwen2ForCausalLM if family == "qwen2" else LlamaForCausalLM
    biases, qk_norm = model_class.attention_biases(config), family == "qwen3"
    x = torch.randn(1, config.hidden_size, device=device)
    separate = _decode_one_token(_layers(config, biases, qk_norm, SEPARATE, device), x, device)
    monkeypatch.setattr(linear, "_folds_prologue", _folds_on_any_device)
    folded = _decode_one_token(_layers(config, biases, qk_norm, FOLDED, device), x, device)
    for got, expected in zip(folded, separate):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def _folded_mlp_rank(rank: int, init_method: str, device: str, tensors: dict, results) -> None:
    """One of 2 ranks: the norm folded into its half of gate_up_proj, SiLU-and-mul into its
    half of the row-parallel down_proj, whose partial sums are all-reduced, the bias added once."""
    linear._folds_prologue = _folds_on_any_device  # this child process only
    init_tensor_parallel(rank, 2, init_method, "gloo")
    try:
        tensors = {name: t.to(device) for name, t in tensors.items()}
        hidden, inter = tensors["down"].shape[0], tensors["down"].shape[1]
        mlp, norm = MLP(hidden, inter, True, FOLDED).to(device), RMSNorm(hidden, 1e-6, FOLDED).to(device)
        gate_up, down = mlp.gate_up_proj, mlp.down_proj
        for part, rows in enumerate(tensors["gate_up"].split(inter)):
            gate_up.weight.weight_loader(gate_up.weight, rows, part)
        for part, rows in enumerate(tensors["gate_up_bias"].split(inter)):
            gate_up.bias.weight_loader(gate_up.bias, rows, part)
        down.weight.weight_loader(down.weight, tensors["down"])
        down.bias.weight_loader(down.bias, tensors["down_bias"])
        norm.weight.data.copy_(tensors["norm"])
        products, residual = gate_up.forward_normed(tensors["x"], tensors["residual"], norm)
        results.put((rank, mlp.from_gate_up(products).tolist(), residual.tolist()))  # no tensors across processes
    finally:
        destroy_tensor_parallel()


def test_folded_mlp_under_tensor_parallelism(monkeypatch, tmp_path):
    # Two gloo ranks, on the GPU where there is one (both on it), else on the CPU with the
    # kernels in Triton's interpreter, which the spawned children take from the environment.
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    hidden, inter = 64, 96
    tensors = dict(x=torch.randn(1, hidden), residual=torch.randn(1, hidden), norm=torch.rand(hidden) + 0.5,
                   gate_up=torch.randn(2 * inter, hidden) / 8, gate_up_bias=torch.randn(2 * inter),
                   down=torch.randn(hidden, inter) / 10, down_bias=torch.randn(hidden))
    normed, residual = fused_add_rms_norm_ref(tensors["x"], tensors["residual"], tensors["norm"], 1e-6)
    gate_up = F.linear(normed, tensors["gate_up"], tensors["gate_up_bias"])
    expected = F.linear(silu_and_mul_ref(gate_up), tensors["down"], tensors["down_bias"])
    results = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_folded_mlp_rank, args=("file://" + str(tmp_path / "rendezvous"), device, tensors, results), nprocs=2)
    for _ in range(2):
        rank, out, new_residual = results.get()
        torch.testing.assert_close(torch.tensor(out), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(torch.tensor(new_residual), residual, atol=0, rtol=0)
