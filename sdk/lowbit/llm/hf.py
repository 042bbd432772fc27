"""Read a Hugging Face decoder directory (``config.json`` + ``*.safetensors``, sharded or not) into
canonical float32 weights keyed by lowbit names, with every shape checked against the config."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterator, Tuple

import numpy as np

from lowbit.llm.config import LlmConfig, LlmConfigError, load_config

# lowbit name -> Hugging Face name ("{i}" = layer index)
_LAYER_NAMES = {
    "attn_norm": "model.layers.{i}.input_layernorm.weight",
    "ffn_norm": "model.layers.{i}.post_attention_layernorm.weight",
    "wq": "model.layers.{i}.self_attn.q_proj.weight",
    "wk": "model.layers.{i}.self_attn.k_proj.weight",
    "wv": "model.layers.{i}.self_attn.v_proj.weight",
    "wo": "model.layers.{i}.self_attn.o_proj.weight",
    "bq": "model.layers.{i}.self_attn.q_proj.bias",
    "bk": "model.layers.{i}.self_attn.k_proj.bias",
    "bv": "model.layers.{i}.self_attn.v_proj.bias",
    "bo": "model.layers.{i}.self_attn.o_proj.bias",
    "w_gate": "model.layers.{i}.mlp.gate_proj.weight",
    "w_up": "model.layers.{i}.mlp.up_proj.weight",
    "w_down": "model.layers.{i}.mlp.down_proj.weight",
}


def expected_shapes(cfg: LlmConfig) -> Dict[str, Tuple[int, ...]]:
    """lowbit tensor name -> shape, for every tensor this config needs."""
    h, f = cfg.hidden_size, cfg.intermediate_size
    shapes: Dict[str, Tuple[int, ...]] = {"embed": (cfg.vocab_size, h), "norm": (h,)}
    if not cfg.tie_word_embeddings:
        shapes["lm_head"] = (cfg.vocab_size, h)
    for i in range(cfg.num_layers):
        p = f"layers.{i}."
        shapes.update({
            p + "attn_norm": (h,), p + "ffn_norm": (h,),
            p + "wq": (cfg.q_dim, h), p + "wk": (cfg.kv_dim, h), p + "wv": (cfg.kv_dim, h),
            p + "wo": (h, cfg.q_dim),
            p + "w_gate": (f, h), p + "w_up": (f, h), p + "w_down": (h, f),
        })
        if cfg.qkv_bias:
            shapes.update({p + "bq": (cfg.q_dim,), p + "bk": (cfg.kv_dim,), p + "bv": (cfg.kv_dim,)})
        if cfg.o_bias:
            shapes[p + "bo"] = (h,)
    return shapes


def hf_name(name: str) -> str:
    if name == "embed":
        return "model.embed_tokens.weight"
    if name == "norm":
        return "model.norm.weight"
    if name == "lm_head":
        return "lm_head.weight"
    _, i, short = name.split(".")
    return _LAYER_NAMES[short].format(i=i)


def _shard_files(model_dir: Path) -> Dict[str, Path]:
    """HF tensor name -> file that holds it."""
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        wmap = json.loads(index.read_text()).get("weight_map", {})
        return {k: model_dir / v for k, v in wmap.items()}
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise LlmConfigError(f"{model_dir}: no *.safetensors weights (lowbit reads safetensors, not .bin)")
    from safetensors import safe_open

    out: Dict[str, Path] = {}
    for fpath in files:
        with safe_open(str(fpath), framework="numpy") as fh:
            for k in fh.keys():
                out[k] = fpath
    return out


def _read(fpath: Path, key: str) -> np.ndarray:
    from safetensors import safe_open

    try:
        with safe_open(str(fpath), framework="numpy") as fh:
            return np.asarray(fh.get_tensor(key), dtype=np.float32)
    except (TypeError, ValueError):  # bfloat16 has no numpy dtype: widen through torch
        import torch

        with safe_open(str(fpath), framework="pt") as fh:
            return fh.get_tensor(key).to(torch.float32).numpy()


class HfCheckpoint:
    """A model directory: ``cfg`` plus lazy access to the float32 weights by lowbit name."""

    def __init__(self, model_dir):
        self.dir = Path(model_dir)
        self.cfg = load_config(self.dir)
        self._files = _shard_files(self.dir)
        self.shapes = expected_shapes(self.cfg)
        missing = [hf_name(n) for n in self.shapes if hf_name(n) not in self._files]
        if missing:
            more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
            raise LlmConfigError(f"{self.dir}: missing tensors {missing[:5]}{more}")
        known = {hf_name(n) for n in self.shapes}
        if self.cfg.tie_word_embeddings:
            known.add("lm_head.weight")  # some checkpoints store the tied head anyway
        extra = [k for k in self._files if k not in known and "rotary_emb" not in k]
        if extra:
            raise LlmConfigError(f"{self.dir}: tensors lowbit does not know how to run: {extra[:5]} "
                                 "(an architecture option this config does not declare?)")

    def get(self, name: str) -> np.ndarray:
        key = hf_name(name)
        arr = _read(self._files[key], key)
        want = self.shapes[name]
        if tuple(arr.shape) != want:
            raise LlmConfigError(f"tensor {key}: shape {list(arr.shape)} does not match the config, "
                                 f"expected {list(want)}")
        if not np.all(np.isfinite(arr)):
            raise LlmConfigError(f"tensor {key}: contains NaN or Inf")
        return arr

    def items(self) -> Iterator[Tuple[str, np.ndarray]]:
        for name in self.shapes:
            yield name, self.get(name)

    def load_all(self) -> Dict[str, np.ndarray]:
        return dict(self.items())
