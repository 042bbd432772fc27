"""Llama-family decoder configuration: read a Hugging Face ``config.json``, validate it, and
resolve every option the runtime needs (GQA, head size, RoPE frequencies incl. scaling variants,
tied embeddings, biases) into one flat, explicit :class:`LlmConfig`.

Anything lowbit cannot run exactly is refused here with a message that names the option.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from lowbit import LowbitError

SUPPORTED_ARCHS = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "mistral": "MistralForCausalLM"}
SUPPORTED_ROPE = ("default", "linear", "dynamic", "llama3", "yarn")


class LlmConfigError(LowbitError):
    """A config.json that lowbit cannot run (unsupported architecture or option, bad value)."""


@dataclass
class LlmConfig:
    """Everything the decoder needs, resolved (no implicit defaults left)."""

    arch: str  # "llama" | "qwen2" | "mistral"
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    context_length: int  # the longest sequence the package accepts
    rope_theta: float
    rope_type: str
    rope_attention_scale: float = 1.0  # multiplies cos/sin (YaRN)
    tie_word_embeddings: bool = False
    qkv_bias: bool = False  # q/k/v projections have a bias (Qwen2, attention_bias=True)
    o_bias: bool = False  # o_proj has a bias (attention_bias=True for Llama)
    mlp_bias: bool = False
    sliding_window: int = 0  # 0 = full attention; else each token attends to the last W positions
    bos_token_id: Optional[int] = None
    eos_token_ids: List[int] = field(default_factory=list)
    pad_token_id: Optional[int] = None
    rope_parameters: Dict[str, Any] = field(default_factory=dict)

    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "LlmConfig":
        return cls(**d)

    def inv_freq(self) -> np.ndarray:
        """RoPE inverse frequencies, float32 [head_dim // 2], with the scaling variant applied."""
        return rope_inv_freq(self)


def _get(raw: Dict[str, Any], key: str, typ, default=None, required: bool = False):
    if key not in raw or raw[key] is None:
        if required:
            raise LlmConfigError(f"config.json: missing required field {key!r}")
        return default
    val = raw[key]
    try:
        if typ is int and (isinstance(val, bool) or int(val) != val):
            raise ValueError
        return typ(val)
    except (TypeError, ValueError):
        raise LlmConfigError(f"config.json: field {key!r} = {val!r} is not a valid {typ.__name__}") from None


def _token_ids(val) -> List[int]:
    if val is None:
        return []
    if isinstance(val, int):
        return [val]
    if isinstance(val, (list, tuple)) and all(isinstance(v, int) for v in val):
        return list(val)
    raise LlmConfigError(f"config.json: eos_token_id = {val!r} is not a token id or a list of them")


def parse_config(raw: Dict[str, Any]) -> LlmConfig:
    """Validates a Hugging Face config dict and resolves it into an :class:`LlmConfig`."""
    arch = raw.get("model_type")
    if arch not in SUPPORTED_ARCHS:
        archs = raw.get("architectures") or []
        raise LlmConfigError(
            f"unsupported architecture: model_type={arch!r} (architectures={archs}); "
            f"lowbit's LLM runtime supports {', '.join(sorted(SUPPORTED_ARCHS))}")
    act = raw.get("hidden_act", "silu")
    if act not in ("silu", "swish"):
        raise LlmConfigError(f"unsupported option: hidden_act={act!r} (only 'silu' / SwiGLU is supported)")
    hidden = _get(raw, "hidden_size", int, required=True)
    heads = _get(raw, "num_attention_heads", int, required=True)
    kv_heads = _get(raw, "num_key_value_heads", int, heads)
    for name, v in (("hidden_size", hidden), ("num_attention_heads", heads), ("num_key_value_heads", kv_heads)):
        if v <= 0:
            raise LlmConfigError(f"config.json: {name} must be positive, got {v}")
    if heads % kv_heads:
        raise LlmConfigError(f"config.json: num_attention_heads={heads} is not a multiple of num_key_value_heads={kv_heads}")
    head_dim = _get(raw, "head_dim", int, None)
    if head_dim is None:
        if hidden % heads:
            raise LlmConfigError(f"config.json: hidden_size={hidden} is not a multiple of num_attention_heads={heads}")
        head_dim = hidden // heads
    if head_dim % 2:
        raise LlmConfigError(f"config.json: head_dim={head_dim} must be even for RoPE")
    if raw.get("pretraining_tp", 1) not in (1, None):
        raise LlmConfigError(f"unsupported option: pretraining_tp={raw['pretraining_tp']} (must be 1)")
    for key in ("num_hidden_layers", "intermediate_size", "vocab_size", "max_position_embeddings"):
        v = _get(raw, key, int, required=key != "max_position_embeddings")
        if v is not None and v <= 0:
            raise LlmConfigError(f"config.json: {key} must be positive, got {v}")

    # RoPE: transformers >= 5 writes rope_parameters; older versions rope_theta + rope_scaling.
    rp = dict(raw.get("rope_parameters") or {})
    if not rp:
        rp = dict(raw.get("rope_scaling") or {})
        rp.setdefault("rope_theta", raw.get("rope_theta", 10000.0))
    if "type" in rp and "rope_type" not in rp:
        rp["rope_type"] = rp.pop("type")
    rope_type = rp.get("rope_type", "default") or "default"
    if rope_type not in SUPPORTED_ROPE:
        raise LlmConfigError(f"unsupported option: rope_type={rope_type!r} (supported: {', '.join(SUPPORTED_ROPE)})")
    if rp.get("partial_rotary_factor", raw.get("partial_rotary_factor", 1.0)) not in (1, 1.0):
        raise LlmConfigError("unsupported option: partial_rotary_factor != 1.0")
    theta = float(rp.get("rope_theta", raw.get("rope_theta", 10000.0)))
    max_pos = _get(raw, "max_position_embeddings", int, 2048)
    context = max_pos
    if rope_type == "dynamic":
        # Dynamic NTK equals plain RoPE up to the original length; lowbit stops there.
        context = int(rp.get("original_max_position_embeddings", max_pos))

    sliding = 0
    if arch == "mistral" and raw.get("sliding_window"):
        sliding = int(raw["sliding_window"])
    if arch == "qwen2" and raw.get("use_sliding_window"):
        raise LlmConfigError("unsupported option: use_sliding_window=True for qwen2 (per-layer windows)")
    if sliding >= context:
        sliding = 0  # never limits anything

    if arch == "qwen2":
        qkv_bias, o_bias = True, False
    else:
        qkv_bias = o_bias = bool(raw.get("attention_bias", False))
    if raw.get("mlp_bias"):
        raise LlmConfigError("unsupported option: mlp_bias=True")

    cfg = LlmConfig(
        arch=arch,
        vocab_size=_get(raw, "vocab_size", int, required=True),
        hidden_size=hidden,
        intermediate_size=_get(raw, "intermediate_size", int, required=True),
        num_layers=_get(raw, "num_hidden_layers", int, required=True),
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        rms_norm_eps=_get(raw, "rms_norm_eps", float, 1e-6),
        context_length=context,
        rope_theta=theta,
        rope_type=rope_type,
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
        qkv_bias=qkv_bias,
        o_bias=o_bias,
        sliding_window=sliding,
        bos_token_id=raw.get("bos_token_id"),
        eos_token_ids=_token_ids(raw.get("eos_token_id")),
        pad_token_id=raw.get("pad_token_id"),
        rope_parameters={k: v for k, v in rp.items() if isinstance(v, (int, float, str, bool))},
    )
    cfg.rope_attention_scale = _rope_attention_scale(cfg)
    rope_inv_freq(cfg)  # validates the scaling parameters now, not at run time
    return cfg


def load_config(model_dir) -> LlmConfig:
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise LlmConfigError(f"{model_dir}: no config.json (expected a Hugging Face model directory)")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise LlmConfigError(f"{path}: not valid JSON ({exc})") from None
    return parse_config(raw)


def _need(rp: Dict[str, Any], key: str, rope_type: str) -> float:
    if key not in rp:
        raise LlmConfigError(f"config.json: rope_type={rope_type!r} needs rope parameter {key!r}")
    return float(rp[key])


def _rope_attention_scale(cfg: LlmConfig) -> float:
    if cfg.rope_type != "yarn":
        return 1.0
    rp = cfg.rope_parameters
    factor = _need(rp, "factor", "yarn")
    if rp.get("attention_factor") is not None:
        return float(rp["attention_factor"])
    mscale, mscale_all = rp.get("mscale"), rp.get("mscale_all_dim")

    def get_mscale(scale, m=1.0):
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    if mscale and mscale_all:
        return float(get_mscale(factor, mscale) / get_mscale(factor, mscale_all))
    return float(get_mscale(factor))


def rope_inv_freq(cfg: LlmConfig) -> np.ndarray:
    """Inverse frequencies as transformers computes them (``modeling_rope_utils``), float32."""
    d = cfg.head_dim
    base = cfg.rope_theta
    rp = cfg.rope_parameters
    inv = 1.0 / (base ** (np.arange(0, d, 2, dtype=np.int64).astype(np.float32) / d))
    t = cfg.rope_type
    if t in ("default", "dynamic"):
        return inv.astype(np.float32)
    if t == "linear":
        return (inv / _need(rp, "factor", t)).astype(np.float32)
    if t == "llama3":
        factor = _need(rp, "factor", t)
        low = _need(rp, "low_freq_factor", t)
        high = _need(rp, "high_freq_factor", t)
        old_ctx = _need(rp, "original_max_position_embeddings", t)
        low_wl, high_wl = old_ctx / low, old_ctx / high
        wavelen = 2 * math.pi / inv
        out = np.where(wavelen > low_wl, inv / factor, inv)
        smooth = (old_ctx / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * out / factor + smooth * out
        medium = ~(wavelen < high_wl) & ~(wavelen > low_wl)
        return np.where(medium, smoothed, out).astype(np.float32)
    if t == "yarn":
        factor = _need(rp, "factor", t)
        beta_fast = float(rp.get("beta_fast") or 32)
        beta_slow = float(rp.get("beta_slow") or 1)
        orig = float(rp.get("original_max_position_embeddings") or cfg.context_length)
        truncate = rp.get("truncate", True)

        def corr_dim(rot):
            return (d * math.log(orig / (rot * 2 * math.pi))) / (2 * math.log(base))

        low, high = corr_dim(beta_fast), corr_dim(beta_slow)
        if truncate:
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, d - 1)
        if low == high:
            high += 0.001
        ramp = np.clip((np.arange(d // 2, dtype=np.float32) - low) / (high - low), 0, 1)
        extrap_factor = 1 - ramp
        pos_freqs = base ** (np.arange(0, d, 2).astype(np.float32) / d)
        interp = 1.0 / (factor * pos_freqs)
        extrap = 1.0 / pos_freqs
        return (interp * (1 - extrap_factor) + extrap * extrap_factor).astype(np.float32)
    raise LlmConfigError(f"unsupported option: rope_type={t!r}")


def is_llm_dir(path) -> bool:
    """True for a directory whose config.json declares a decoder model_type lowbit knows of
    (or any model_type with *ForCausalLM architectures, so unsupported ones get a clear error)."""
    p = Path(path) / "config.json"
    if not p.is_file():
        return False
    try:
        raw = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    archs = raw.get("architectures") or []
    return raw.get("model_type") in SUPPORTED_ARCHS or any(str(a).endswith("ForCausalLM") for a in archs)
