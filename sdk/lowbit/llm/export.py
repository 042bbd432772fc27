"""Export a Hugging Face Llama-family model directory to an LLM device package (.lbpk, manifest
kind "llm"): config resolved and validated, q/k/v and gate/up fused, linear weights quantized with
the scheme and packed in the layout the native qlinear kernels read, RoPE frequencies (with the
scaling variant) precomputed.

Tensors written (lowbit names): ``embed`` (+ ``embed.scale`` for int8), ``norm``,
``rope.inv_freq``, ``layers.{i}.{attn_norm,ffn_norm}``, linears ``layers.{i}.{qkv,o,gate_up,down}``
and ``head`` (each with a ``linear`` format field and, for biases, ``<name>.bias``); with calibration
data ``kv_order`` (int32 [layers, kv_heads, 2, head_dim]).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from lowbit import LowbitError
from lowbit.llm.config import LlmConfig
from lowbit.llm.hf import HfCheckpoint
from lowbit.llm import quantize as Q

SCHEMES = ("fp32", "w4a8-g32", "w4a8-g64", "w4a8-g128", "w4a8-g32-gptq", "w8a8d", "t2a8")


def _fused(ck: HfCheckpoint, i: int, names) -> np.ndarray:
    return np.concatenate([ck.get(f"layers.{i}.{n}") for n in names], axis=0)


def export_hf(model_dir, out, *, scheme: str = "w4a8-g32", calib=None, embed: str = "auto", head: str = "auto",
              context_length: Optional[int] = None, progress: bool = False, **options: Any) -> Path:
    """Writes ``out`` (.lbpk) from a Hugging Face model directory and returns its path.

    embed / head: "f32" or "int8" ("auto": float for ``fp32``, int8 otherwise).
    context_length: a shorter maximum sequence than the config's (smaller KV cache by default).
    calib: calibration data (token ids [n_seq, seq_len], a list of texts, or a .npy / .npz / .txt file):
    needed by the ``-gptq`` schemes; with any scheme it also fixes the bfp KV cache's channel orders
    (tensor ``kv_order``), which the runtime otherwise takes from the first prefill chunk.
    """
    if scheme == "w8a8":
        raise LowbitError("LLM packages quantize activations dynamically: use scheme 'w8a8d' (or the default "
                          "'w4a8-g32'), not the static 'w8a8'")
    if scheme not in SCHEMES:
        raise LowbitError(f"unknown LLM scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    fmt = options.pop("format", "lbpk")
    if fmt != "lbpk":
        raise LowbitError(f"LLM models export to the .lbpk format only (got format={fmt!r})")
    target = options.pop("target", None)
    for key in ("verbose", "calib_method"):  # generic export options with no meaning here
        options.pop(key, None)
    # Graph-model options: accepted at their "off" value (the CLI always passes them), refused otherwise.
    for key in ("smooth", "keep_float", "budget_bits", "sparse_outliers", "input_shapes"):
        if key in options and options.pop(key):
            raise LowbitError(f"option {key!r} is not supported for LLM export")
    if options:
        raise LowbitError(f"export_hf: unknown option(s) {sorted(options)}")
    t0 = time.time()
    ck = HfCheckpoint(model_dir)
    cfg: LlmConfig = ck.cfg
    if context_length is not None:
        if not 0 < int(context_length) <= cfg.context_length:
            raise LowbitError(f"context_length must be in 1..{cfg.context_length}, got {context_length}")
        cfg.context_length = int(context_length)
    quantized = scheme != "fp32"
    embed = ("int8" if quantized else "f32") if embed == "auto" else embed
    head = ("int8" if quantized else "f32") if head == "auto" else head
    for k, v in (("embed", embed), ("head", head)):
        if v not in ("f32", "int8"):
            raise LowbitError(f"{k} must be 'f32' or 'int8', got {v!r}")
    gptq = None
    kv = None
    if calib is not None:  # calibration also orders the bfp KV cache's channels (docs/llm.md)
        from lowbit.llm.calib import KvOrderStats, calib_sequences, run_reference

        kv = KvOrderStats(cfg)
    if scheme.endswith("-gptq"):
        gptq = Q.GptqContext(ck, calib, scheme, kv=kv)
    elif kv is not None:
        run_reference(ck, calib_sequences(ck, calib), kv=kv)

    from lowbit.exporters.lbpk_container import PackageWriter

    out = Path(out)
    linear_info: Dict[str, str] = {}
    with PackageWriter(out) as w:
        e = ck.get("embed")
        if embed == "f32":
            w.add_tensor("embed", e)
        else:
            q, s = Q.quantize_rows_int8(e)
            w.add_tensor("embed", q)
            w.add_tensor("embed.scale", s)
        w.add_tensor("norm", ck.get("norm"))
        w.add_tensor("rope.inv_freq", cfg.inv_freq())
        layer_scheme = scheme
        for i in range(cfg.num_layers):
            p = f"layers.{i}."
            w.add_tensor(p + "attn_norm", ck.get(p + "attn_norm"))
            w.add_tensor(p + "ffn_norm", ck.get(p + "ffn_norm"))
            mats = {name: _fused(ck, i, parts) for name, parts in Q.FUSED_LINEARS.items()}
            qws = gptq.quantize_layer(i, mats) if gptq is not None else {}
            for name, mat in mats.items():
                linear_info[p + name] = Q.write_linear(w, p + name, mat, layer_scheme.removesuffix("-gptq"),
                                                       qweight=qws.get(name))
            if cfg.qkv_bias:
                w.add_tensor(p + "qkv.bias", _fused(ck, i, ("bq", "bk", "bv")))
            if cfg.o_bias:
                w.add_tensor(p + "o.bias", ck.get(p + "bo"))
            if progress:
                print(f"  layer {i + 1}/{cfg.num_layers}", flush=True)
        head_tied = cfg.tie_word_embeddings and head == "f32" and embed == "f32"
        if not head_tied:
            hw = e if cfg.tie_word_embeddings else ck.get("lm_head")
            linear_info["head"] = Q.write_linear(w, "head", hw, "fp32" if head == "f32" else "w8a8d")
        if kv is not None:
            w.add_tensor("kv_order", kv.order())
        tok = Path(model_dir) / "tokenizer.json"
        if tok.is_file():
            w.add_blob("tokenizer.json", tok.read_bytes())
        llm = cfg.to_dict()
        llm.update(embed_format="f32" if embed == "f32" else "i8", head_tied=head_tied,
                   num_layers=cfg.num_layers, rope_inv_freq="rope.inv_freq")
        if kv is not None:
            llm.update(kv_order="kv_order", kv_order_calib_rows=int(kv.rows))
        w.manifest.update({
            "kind": "llm",
            "name": Path(model_dir).resolve().name,
            "scheme": scheme,
            "llm": llm,
            "linears": linear_info,
            "tokenizer": "tokenizer.json" if tok.is_file() else None,
            "target": None if target in (None, "auto") else str(getattr(target, "name", target)),
            "producer": {"lowbit": __import__("lowbit").__version__, "export_seconds": round(time.time() - t0, 2)},
        })
    return out


def read_manifest(path) -> Dict[str, Any]:
    from lowbit.exporters.lbpk_container import PackageReader

    r = PackageReader(path, verify=False)
    try:
        return dict(r.manifest)
    finally:
        r.close()
