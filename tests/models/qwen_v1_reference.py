"""An independent plain-torch Qwen v1, written from the published architecture (Qwen's
modeling_qwen.py): RMSNorm, fused c_attn with bias, rotary (rotate_half) over the first
rotary_pct of each head, causal softmax attention, SwiGLU with SiLU on w2, untied lm_head."""
from __future__ import annotations

import json
import os

import torch
import torch.nn.functional as F
from safetensors.torch import load_file


def _rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def _linear(w, prefix, x):
    return F.linear(x, w[prefix + ".weight"], w.get(prefix + ".bias"))


def _rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class QwenV1Reference:
    def __init__(self, directory: str):
        with open(os.path.join(directory, "config.json")) as f:
            self.config = json.load(f)
        self.w = load_file(os.path.join(directory, "model.safetensors"))

    def logits(self, ids: list[int]) -> torch.Tensor:
        """Logits [len(ids), vocab] of one causal sequence."""
        c, w = self.config, self.w
        heads, d, eps = c["num_attention_heads"], c["kv_channels"], c["layer_norm_epsilon"]
        n = len(ids)
        rot = int(d * c["rotary_pct"])
        inv_freq = 1.0 / c["rotary_emb_base"] ** (torch.arange(0, rot, 2).float() / rot)
        freqs = torch.outer(torch.arange(n).float(), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]

        def rope(t):  # [n, heads, d]
            t_rot, t_pass = t[..., :rot], t[..., rot:]
            return torch.cat((t_rot * cos + _rotate_half(t_rot) * sin, t_pass), dim=-1)

        mask = torch.full((n, n), float("-inf")).triu(1)
        h = w["transformer.wte.weight"][torch.tensor(ids)]
        for i in range(c["num_hidden_layers"]):
            p = f"transformer.h.{i}."
            qkv = _linear(w, p + "attn.c_attn", _rms_norm(h, w[p + "ln_1.weight"], eps))
            q, k, v = (t.reshape(n, heads, d) for t in qkv.chunk(3, dim=-1))
            q, k = rope(q), rope(k)
            scores = torch.einsum("qhd,khd->hqk", q, k) / d ** 0.5 + mask
            attn = torch.einsum("hqk,khd->qhd", scores.softmax(-1), v).reshape(n, heads * d)
            h = h + _linear(w, p + "attn.c_proj", attn)
            x = _rms_norm(h, w[p + "ln_2.weight"], eps)
            mlp = _linear(w, p + "mlp.w1", x) * F.silu(_linear(w, p + "mlp.w2", x))
            h = h + _linear(w, p + "mlp.c_proj", mlp)
        return F.linear(_rms_norm(h, w["transformer.ln_f.weight"], eps), w["lm_head.weight"])

    def greedy(self, prompt: list[int], max_new_tokens: int) -> list[int]:
        ids = list(prompt)
        for _ in range(max_new_tokens):
            ids.append(int(self.logits(ids)[-1].argmax()))
        return ids[len(prompt):]
