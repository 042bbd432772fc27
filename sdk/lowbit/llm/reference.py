"""A plain numpy Llama-family decoder: the definition of what the native runtime computes.

Used by the tests (against transformers and against the native runtime) and for accuracy
reports of quantized packages (pass dequantized weights). Slow on purpose: clarity first.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from lowbit.llm.config import LlmConfig


def rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    var = np.mean(x.astype(np.float32) ** 2, axis=-1, keepdims=True)
    return (x / np.sqrt(var + eps)) * w


def rope(x: np.ndarray, pos: np.ndarray, inv_freq: np.ndarray, scale: float) -> np.ndarray:
    """x [T, heads, d]; rotate-half RoPE (pairs i and i + d/2), as in transformers."""
    freqs = pos.astype(np.float32)[:, None] * inv_freq[None, :]  # [T, d/2]
    cos = (np.cos(freqs) * scale)[:, None, :]
    sin = (np.sin(freqs) * scale)[:, None, :]
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


class ReferenceDecoder:
    """Incremental decoder with a float32 KV cache. ``weights`` uses lowbit names (see hf.py)."""

    def __init__(self, cfg: LlmConfig, weights: Dict[str, np.ndarray]):
        self.cfg = cfg
        self.w = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
        self.inv_freq = cfg.inv_freq()
        self.reset()

    def reset(self) -> None:
        c = self.cfg
        self.k_cache = [np.zeros((0, c.num_kv_heads, c.head_dim), np.float32) for _ in range(c.num_layers)]
        self.v_cache = [np.zeros((0, c.num_kv_heads, c.head_dim), np.float32) for _ in range(c.num_layers)]
        self.pos = 0

    def forward(self, tokens, capture=None) -> np.ndarray:
        """Appends ``tokens`` to the sequence; returns logits [T, vocab] for each of them.
        ``capture(layer, name, x)``, if given, sees the input of each fused linear
        ("qkv", "o", "gate_up", "down") — GPTQ collects its Hessians this way."""
        c, w = self.cfg, self.w
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
        t = len(tokens)
        if self.pos + t > c.context_length:
            raise ValueError(f"sequence of {self.pos + t} tokens exceeds the context length {c.context_length}")
        pos = np.arange(self.pos, self.pos + t)
        x = w["embed"][tokens]
        for i in range(c.num_layers):
            x, self.k_cache[i], self.v_cache[i] = layer_forward(c, w, i, x, pos, self.inv_freq, self.k_cache[i],
                                                                self.v_cache[i], capture)
        self.pos += t
        x = rms_norm(x, w["norm"], c.rms_norm_eps)
        head = w["embed"] if c.tie_word_embeddings else w["lm_head"]
        return x @ head.T

    def generate_greedy(self, prompt, max_new_tokens: int, stop: Optional[List[int]] = None) -> List[int]:
        logits = self.forward(prompt)[-1]
        out: List[int] = []
        for _ in range(max_new_tokens):
            tok = int(np.argmax(logits))
            out.append(tok)
            if stop and tok in stop:
                break
            logits = self.forward([tok])[-1]
        return out


def layer_forward(c: LlmConfig, w: Dict[str, np.ndarray], i: int, x: np.ndarray, pos: np.ndarray,
                  inv_freq: np.ndarray, k_past: np.ndarray, v_past: np.ndarray, capture=None):
    """Decoder layer ``i`` on rows ``x`` [T, hidden] at positions ``pos``, after the layer's cached keys /
    values ``k_past`` / ``v_past`` [n, kv_heads, head_dim]. Returns (x out, keys, values) with the rows
    appended. ``capture(layer, name, x)`` as in :meth:`ReferenceDecoder.forward`."""
    t = x.shape[0]
    group = c.num_heads // c.num_kv_heads
    p = f"layers.{i}."
    h = rms_norm(x, w[p + "attn_norm"], c.rms_norm_eps)
    if capture:
        capture(i, "qkv", h)
    q = h @ w[p + "wq"].T
    k = h @ w[p + "wk"].T
    v = h @ w[p + "wv"].T
    if c.qkv_bias:
        q, k, v = q + w[p + "bq"], k + w[p + "bk"], v + w[p + "bv"]
    q = rope(q.reshape(t, c.num_heads, c.head_dim), pos, inv_freq, c.rope_attention_scale)
    k = rope(k.reshape(t, c.num_kv_heads, c.head_dim), pos, inv_freq, c.rope_attention_scale)
    v = v.reshape(t, c.num_kv_heads, c.head_dim)
    kk = np.concatenate([k_past, k])
    vv = np.concatenate([v_past, v])
    kpos = np.arange(kk.shape[0])
    mask = kpos[None, :] > pos[:, None]  # causal
    if c.sliding_window:
        mask |= kpos[None, :] <= pos[:, None] - c.sliding_window
    out = np.empty((t, c.num_heads, c.head_dim), np.float32)
    for hq in range(c.num_heads):
        hk = hq // group
        s = (q[:, hq, :] @ kk[:, hk, :].T) / np.sqrt(c.head_dim)
        s = np.where(mask, -np.inf, s)
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        out[:, hq, :] = s @ vv[:, hk, :]
    if capture:
        capture(i, "o", out.reshape(t, -1))
    o = out.reshape(t, -1) @ w[p + "wo"].T
    if c.o_bias:
        o = o + w[p + "bo"]
    x = x + o
    h = rms_norm(x, w[p + "ffn_norm"], c.rms_norm_eps)
    g = h @ w[p + "w_gate"].T
    u = h @ w[p + "w_up"].T
    act = (g / (1 + np.exp(-g))) * u
    if capture:
        capture(i, "gate_up", h)
        capture(i, "down", act)
    return x + act @ w[p + "w_down"].T, kk, vv
