"""Fixtures of the LLM tests (helpers live in llm_helpers.py; shared ones in lowbit_testutil.py)."""
from __future__ import annotations

import pytest

from llm_helpers import make_hf_model


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny_llama")
    model = make_hf_model(d, "llama")
    return d, model


@pytest.fixture(scope="session")
def tiny_fp32_pkg(tiny_llama, tmp_path_factory):
    from lowbit.llm.export import export_hf

    d, _ = tiny_llama
    return export_hf(d, tmp_path_factory.mktemp("pkg") / "tiny_fp32.lbpk", scheme="fp32")
