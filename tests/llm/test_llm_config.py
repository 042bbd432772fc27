"""Config validation, RoPE scaling variants and the HF reader's checks."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lowbit.llm.config import LlmConfigError, parse_config

BASE = dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, vocab_size=100, max_position_embeddings=128)


def cfg(**kw):
    d = dict(BASE)
    d.update(kw)
    return d


def test_llm_config_resolves_gqa_and_defaults():
    c = parse_config(cfg(eos_token_id=[2, 7], bos_token_id=1))
    assert (c.num_heads, c.num_kv_heads, c.head_dim, c.q_dim, c.kv_dim) == (4, 2, 16, 64, 32)
    assert c.eos_token_ids == [2, 7] and c.bos_token_id == 1 and c.context_length == 128
    assert not c.qkv_bias and parse_config(cfg(model_type="qwen2")).qkv_bias


@pytest.mark.parametrize("raw, words", [
    (cfg(model_type="gpt2"), ["unsupported architecture", "gpt2"]),
    (cfg(hidden_act="gelu"), ["hidden_act", "gelu"]),
    (cfg(rope_parameters={"rope_type": "longrope", "rope_theta": 1e4}), ["rope_type", "longrope"]),
    (cfg(num_key_value_heads=3), ["num_key_value_heads=3"]),
    (cfg(hidden_size=63), ["hidden_size=63"]),
    (cfg(mlp_bias=True), ["mlp_bias"]),
    (cfg(vocab_size=None), ["vocab_size"]),
    (cfg(num_hidden_layers="two"), ["num_hidden_layers"]),
    (cfg(rope_parameters={"rope_type": "llama3", "rope_theta": 1e4, "factor": 8.0}), ["low_freq_factor"]),
])
def test_llm_config_rejects_with_named_option(raw, words):
    with pytest.raises(LlmConfigError) as ei:
        parse_config(raw)
    for w in words:
        assert w in str(ei.value)


@pytest.mark.parametrize("rope", [
    {"rope_type": "linear", "factor": 2.0},
    {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
     "original_max_position_embeddings": 32},
    {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32},
    {"rope_type": "dynamic", "factor": 2.0},
])
def test_llm_rope_inv_freq_matches_transformers(rope):
    import transformers
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    kw = dict(BASE)
    kw.pop("model_type")
    hf = transformers.LlamaConfig(**kw, rope_scaling=dict(rope))
    c = parse_config(json.loads(hf.to_json_string()))
    if rope["rope_type"] == "dynamic":
        want, scale = ROPE_INIT_FUNCTIONS["dynamic"](hf, None, seq_len=32)
    else:
        want, scale = ROPE_INIT_FUNCTIONS[rope["rope_type"]](hf, None)
    np.testing.assert_allclose(c.inv_freq(), want.numpy(), rtol=1e-6)
    assert c.rope_attention_scale == pytest.approx(scale)


def test_llm_hf_reader_rejects_wrong_shapes_and_missing(tmp_path, tiny_llama):
    from safetensors.numpy import load_file, save_file

    from lowbit.llm.hf import HfCheckpoint

    src, _ = tiny_llama
    tensors = load_file(str(src / "model.safetensors"))
    (tmp_path / "config.json").write_text((src / "config.json").read_text())
    bad = dict(tensors)
    bad["model.layers.1.mlp.up_proj.weight"] = np.zeros((7, 64), np.float32)
    save_file(bad, str(tmp_path / "model.safetensors"))
    with pytest.raises(LlmConfigError, match=r"up_proj.*shape \[7, 64\].*expected \[160, 64\]"):
        HfCheckpoint(tmp_path).get("layers.1.w_up")
    del bad["model.norm.weight"]
    save_file(bad, str(tmp_path / "model.safetensors"))
    with pytest.raises(LlmConfigError, match="missing tensors.*model.norm.weight"):
        HfCheckpoint(tmp_path)
    with pytest.raises(LlmConfigError, match="no config.json"):
        HfCheckpoint(tmp_path / "nowhere")
