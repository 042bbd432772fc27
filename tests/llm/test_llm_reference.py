"""The numpy reference decoder equals transformers on every supported architecture variant."""
from __future__ import annotations

import numpy as np
import pytest

from llm_helpers import make_hf_model, torch_logits
from lowbit.llm.hf import HfCheckpoint
from lowbit.llm.reference import ReferenceDecoder

kLogitRelTol = 1e-4


@pytest.mark.parametrize("arch, kw", [
    ("qwen2", {}),
    ("mistral", {"sliding_window": 8}),
    ("llama", {"tie_word_embeddings": True, "attention_bias": True}),
    ("llama", {"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 32}}),
])
def test_llm_reference_matches_transformers(tmp_path, arch, kw):
    model = make_hf_model(tmp_path, arch, **kw)
    ck = HfCheckpoint(tmp_path)
    ids = np.random.default_rng(1).integers(0, 256, 30)
    ref = ReferenceDecoder(ck.cfg, ck.load_all())
    # two calls: the incremental cache path is exercised too
    got = np.concatenate([ref.forward(ids[:17]), ref.forward(ids[17:])])
    want = torch_logits(model, ids)
    assert np.abs(got - want).max() <= kLogitRelTol * np.abs(want).max()
