"""Calibration for LLM export: the calibration sequences (token ids, texts, or a file), one float
reference run over them, and what is derived from that run besides GPTQ's Hessians — the block
floating point KV cache's channel orders (docs/llm.md, "Block floating point KV cache").
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Optional

import numpy as np

from lowbit import LowbitError

CALIB_HELP = ("calibration data: token ids ([n_seq, seq_len] array or list of lists), a list of texts (needs "
              "tokenizer.json in the model directory), or a file: .npy of token ids, .npz of token-id arrays, "
              ".txt (one text per non-empty line)")


def calib_sequences(ck, calib) -> List[np.ndarray]:
    """The calibration sequences as int64 token-id arrays, each cut to the context length."""
    if isinstance(calib, (str, Path)):
        calib = _load_file(Path(calib))
    if isinstance(calib, (list, tuple)) and calib and all(isinstance(c, str) for c in calib):
        tok_path = ck.dir / "tokenizer.json"
        if not tok_path.is_file():
            raise LowbitError("text calibration needs tokenizer.json in the model directory; pass token ids")
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(tok_path))
        seqs = [np.asarray(tok.encode(t).ids, np.int64) for t in calib]
    else:
        try:
            seqs = [np.asarray(s, np.int64).reshape(-1) for s in (calib if np.ndim(calib[0]) else [calib])]
        except (TypeError, ValueError, IndexError) as exc:
            raise LowbitError(f"cannot read the calibration data ({exc}); expected {CALIB_HELP}") from None
    v = ck.cfg.vocab_size
    for s in seqs:
        if s.size == 0 or s.min() < 0 or s.max() >= v:
            raise LowbitError(f"calibration token ids must be non-empty and within [0, {v})")
    return [s[: ck.cfg.context_length] for s in seqs]


def _load_file(p: Path):
    if not p.is_file():
        raise LowbitError(f"calibration file {p} does not exist; expected {CALIB_HELP}")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(p, allow_pickle=False)
        if suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                return [z[k] for k in z.files]
        if suffix == ".txt":
            lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]
            return [ln for ln in lines if ln]
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise LowbitError(f"cannot read calibration file {p}: {exc}") from None
    raise LowbitError(f"calibration file {p}: unknown type {suffix!r}; expected {CALIB_HELP}")


class KvOrderStats:
    """Per (layer, KV head) channel magnitudes of the post-RoPE keys and the values over the
    calibration run, and from them the channel orders the bfp KV cache stores rows in: the same
    rule the runtime applies to the first prefill chunk when a package has none (llm_kv.cpp
    `KvCache::set_order`): keys by the max over rows of the norm of the RoPE pair (i, i +- d/2),
    values by max |v|, descending, ties in channel order."""

    def __init__(self, cfg):
        self.cfg = cfg
        shape = (cfg.num_layers, cfg.num_kv_heads, cfg.head_dim)
        self.mk = np.zeros(shape, np.float64)
        self.mv = np.zeros(shape, np.float64)
        self.rows = 0

    def update(self, ref) -> None:
        """Folds in the KV cache of a reference decoder that has just run one sequence."""
        for i, (k, v) in enumerate(zip(ref.k_cache, ref.v_cache)):
            self.update_layer(i, k, v)

    def update_layer(self, layer: int, k: np.ndarray, v: np.ndarray) -> None:
        """Folds in one sequence's post-RoPE keys and values [T, kv_heads, head_dim] of one layer."""
        k = k.astype(np.float64)
        pair = np.sqrt(k * k + np.roll(k, self.cfg.head_dim // 2, axis=-1) ** 2)
        self.mk[layer] = np.maximum(self.mk[layer], pair.max(axis=0))
        self.mv[layer] = np.maximum(self.mv[layer], np.abs(v).max(axis=0))
        if layer == 0:
            self.rows += k.shape[0]

    def order(self) -> np.ndarray:
        """int32 [layers, kv_heads, 2, head_dim]: the key order, then the value order."""
        keys = np.argsort(-self.mk, axis=-1, kind="stable")
        vals = np.argsort(-self.mv, axis=-1, kind="stable")
        return np.stack([keys, vals], axis=2).astype(np.int32)


def run_reference(ck, seqs: List[np.ndarray], capture: Optional[Callable] = None,
                  kv: Optional[KvOrderStats] = None) -> None:
    """One float reference pass over the calibration sequences (each from an empty cache):
    `capture(layer, name, x)` sees each fused linear's input, `kv` the keys and values."""
    from lowbit.llm.reference import ReferenceDecoder

    ref = ReferenceDecoder(ck.cfg, ck.load_all())
    for seq in seqs:
        ref.reset()
        ref.forward(seq, capture=capture)
        if kv is not None:
            kv.update(ref)
