"""Fixtures of the LLM tests (helpers live in llm_helpers.py). pytest imports this file as the
module `conftest`, which hides tests/conftest.py from `from conftest import ...` in folders
collected later, so the root conftest's public helpers are re-exported here."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from llm_helpers import make_hf_model


def _reexport_root_conftest() -> None:
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location("_lowbit_tests_root_conftest_llm", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name, value in vars(mod).items():
        fixture_like = hasattr(value, "_pytestfixturefunction") or "Fixture" in type(value).__name__
        if not name.startswith("__") and name not in globals() and not fixture_like:
            globals()[name] = value


_reexport_root_conftest()


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
