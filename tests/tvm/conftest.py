"""TVM writer fixtures: compiled artifacts are cached per test session (TVM compiles are slow)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

pytest.importorskip("tvm")

_CACHE = {}


@pytest.fixture(scope="session")
def tvm_artifact(tmp_path_factory):
    """compile(key, graph_fn, profile) -> artifact folder, compiled once per session."""
    from lowbit.exporters.tvm import write_tvm

    base = tmp_path_factory.mktemp("tvm")

    def compile_(key, graph_fn, profile):
        k = (key, profile)
        if k not in _CACHE:
            g = graph_fn()
            _CACHE[k] = (g, write_tvm(g, base / f"{key}-{profile}", profile))
        return _CACHE[k]

    return compile_


def need_tool(tool: str, package: str) -> None:
    """Skip (or fail under LOWBIT_REQUIRE_ALL=1, as `make test` sets) when a system tool is missing."""
    import os
    import shutil

    if shutil.which(tool):
        return
    msg = f"{tool} not found: apt-get install {package} (or run `make system-deps`)"
    if os.environ.get("LOWBIT_REQUIRE_ALL") == "1":
        pytest.fail(msg)
    pytest.skip(msg)
