"""Quantizers that write the exact tensors of each checkpoint format, from the formats'
specifications (auto-gptq / gptqmodel, AutoAWQ GEMM, FP8 per-tensor and block-wise), and the
dense weight each encodes. Round-to-nearest stands in for the GPTQ/AWQ search algorithms: a
loader only sees the layout, which is the same.

Every function takes a dense weight [N out, K in] (torch.nn.Linear's layout) and returns
(tensors to save under the layer's prefix, the dequantized weight [N, K] in fp32)."""
from __future__ import annotations

import torch

AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)


def pack_words(codes: torch.Tensor, bits: int, order=None) -> torch.Tensor:
    """Pack the last dimension of non-negative `codes`: word j holds codes j*w .. j*w+w-1
    (w = 32 // bits), its i-th field (bits i*bits and up) taking code `order[i]` of its run."""
    per_word = 32 // bits
    runs = codes.to(torch.int64).reshape(*codes.shape[:-1], -1, per_word)
    word = torch.zeros(runs.shape[:-1], dtype=torch.int64)
    for field, code in enumerate(order or range(per_word)):
        word |= runs[..., code] << (bits * field)
    return torch.where(word >= 2 ** 31, word - 2 ** 32, word).to(torch.int32)


def _min_max_grid(w: torch.Tensor, bits: int, sym: bool):
    """Per row of `w`: (scale, zero) of the asymmetric (or symmetric) min-max grid that
    includes 0, as GPTQ's and AWQ's quantizers build it."""
    maxq = 2 ** bits - 1
    lo, hi = w.min(1).values.clamp(max=0), w.max(1).values.clamp(min=0)
    if sym:
        hi = torch.maximum(-lo, hi)
        lo = -hi
    scale = ((hi - lo) / maxq).clamp(min=1e-6).half().float()
    zero = torch.full_like(scale, (maxq + 1) // 2) if sym else torch.round(-lo / scale).clamp(0, maxq)
    return scale, zero


def gptq(weight, bits=4, group_size=128, sym=True, desc_act=False, checkpoint_format="gptq", seed=0):
    n, k = weight.shape
    size = k if group_size == -1 else group_size
    maxq = 2 ** bits - 1
    order = torch.randperm(k, generator=torch.Generator().manual_seed(seed)) if desc_act else torch.arange(k)
    g_idx = torch.empty(k, dtype=torch.int32)
    g_idx[order] = (torch.arange(k) // size).int()  # act-order: groups follow the permuted order
    groups = int(g_idx.max()) + 1
    codes, scales, zeros = torch.zeros(k, n, dtype=torch.int64), torch.zeros(groups, n), torch.zeros(groups, n)
    for g in range(groups):
        cols = (g_idx == g).nonzero().flatten()
        scale, zero = _min_max_grid(weight[:, cols], bits, sym)
        if checkpoint_format == "gptq":
            zero = zero.clamp(min=1)  # v1 stores zero - 1: a zero point of 0 would not survive
        codes[cols] = (torch.round(weight[:, cols] / scale[:, None]) + zero[:, None]).clamp(0, maxq).long().T
        scales[g], zeros[g] = scale, zero
    stored_zeros = zeros.long() - (1 if checkpoint_format == "gptq" else 0)
    tensors = {"qweight": pack_words(codes.T, bits).T.contiguous(),      # packed along K
               "qzeros": pack_words(stored_zeros, bits),                 # packed along N
               "scales": scales.half(), "g_idx": g_idx}
    dense = (codes - zeros[g_idx.long()]) * scales.half().float()[g_idx.long()]
    return tensors, dense.T.contiguous()


def awq(weight, group_size=128):
    n, k = weight.shape
    size = k if group_size == -1 else group_size
    codes, scales, zeros = torch.zeros(k, n, dtype=torch.int64), [], []
    for g in range(k // size):
        rows = slice(g * size, (g + 1) * size)
        scale, zero = _min_max_grid(weight[:, rows], 4, sym=False)
        codes[rows] = (torch.round(weight[:, rows] / scale[:, None]) + zero[:, None]).clamp(0, 15).long().T
        scales.append(scale)
        zeros.append(zero)
    scales, zeros = torch.stack(scales), torch.stack(zeros)
    tensors = {"qweight": pack_words(codes, 4, AWQ_ORDER), "qzeros": pack_words(zeros.long(), 4, AWQ_ORDER),
               "scales": scales.half()}
    group = torch.arange(k) // size
    return tensors, ((codes - zeros[group]) * scales.half().float()[group]).T.contiguous()


_E4M3_MAX = 448.0


def fp8_per_tensor(weight, input_scale=None):
    scale = weight.abs().max() / _E4M3_MAX
    fp8 = (weight / scale).to(torch.float8_e4m3fn)
    tensors = {"weight": fp8, "weight_scale": scale.reshape(())}
    if input_scale is not None:
        tensors["input_scale"] = torch.tensor(input_scale)
    return tensors, fp8.float() * scale


def fp8_block(weight, block=(128, 128)):
    bn, bk = block
    n, k = weight.shape
    rows, cols = torch.arange(n) // bn, torch.arange(k) // bk
    scale_inv = torch.zeros(int(rows[-1]) + 1, int(cols[-1]) + 1)
    for i in range(scale_inv.shape[0]):
        for j in range(scale_inv.shape[1]):
            scale_inv[i, j] = weight[i * bn:(i + 1) * bn, j * bk:(j + 1) * bk].abs().max() / _E4M3_MAX
    expanded = scale_inv[rows][:, cols]
    fp8 = (weight / expanded).to(torch.float8_e4m3fn)
    return {"weight": fp8, "weight_scale_inv": scale_inv}, fp8.float() * expanded


def load_linear(method, tensors: dict, in_features: int, out_features: int, device):
    """A Linear whose weight is `method`'s, loaded from a checkpoint's `tensors` as the model
    loader does (each parameter's weight_loader, then the method's repacking)."""
    from ember.models.layers.linear import Linear

    layer = Linear(in_features, out_features)
    del layer.weight
    layer.quant_method = method
    method.create_weights(layer, torch.float32, device)
    for name, tensor in tensors.items():
        param = getattr(layer, name)
        param.weight_loader(param, tensor.to(device, param.dtype))
    method.process_weights_after_loading(layer)
    return layer
