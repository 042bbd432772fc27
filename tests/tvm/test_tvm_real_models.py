"""A real model through the TVM writer: all-MiniLM-L6-v2 (w4a16-g128: int4 weights decoded in the
matmul kernels) compiled for x86 and run through the TVM runtime, within the documented tolerance
of lowbit's reference executor on the same quantized graph."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_minilm_w4a16_tvm_matches_reference(tmp_path):
    refexec = pytest.importorskip("lowbit.refexec")
    export_api = pytest.importorskip("lowbit.export_api")
    zoo = pytest.importorskip("lowbit.zoo")
    pytest.importorskip("transformers")
    from lowbit.exporters.tvm import TOLERANCE, load_tvm, write_tvm

    model = zoo.MiniLMEncoder()
    tok = zoo.minilm_tokenizer()
    enc = tok(zoo.SENTENCES[:1], padding="max_length", max_length=16, truncation=True, return_tensors="pt")
    _, qg, _, _ = export_api.prepare(model, example_inputs=(enc["input_ids"], enc["attention_mask"]),
                                     scheme="w4a16-g128")
    art = write_tvm(qg, tmp_path / "minilm.tvm", "x86-64-avx2")
    m = load_tvm(art)
    assert any("int4" in k for k in m.manifest["quant_kernels"])
    ex = refexec.RefExecutor(qg)
    for sentence in zoo.SENTENCES[1:3]:
        e = tok([sentence], padding="max_length", max_length=16, truncation=True, return_tensors="np")
        feeds = {qg.inputs[0].name: e["input_ids"], qg.inputs[1].name: e["attention_mask"]}
        out, ref = m.run(feeds), ex.run(feeds)
        for k in ref:
            err = float(np.max(np.abs(out[k] - ref[k])) / np.max(np.abs(ref[k])))
            assert err <= TOLERANCE["max_abs_err_rel_to_max"], f"{k}: {err:.3g}"
            cos = float((out[k] * ref[k]).sum() / np.linalg.norm(out[k]) / np.linalg.norm(ref[k]))
            assert cos > 0.99999
