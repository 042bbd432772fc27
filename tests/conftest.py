"""Shared fixtures (native builds, the extension). Helpers live in lowbit_testutil.py."""
from __future__ import annotations

from pathlib import Path

import pytest

from lowbit_testutil import (  # noqa: F401  (re-exported for older imports)
    BUILD, REQUIRE_ALL, ROOT, TOOLCHAIN_AARCH64, cmake_build, need_tool, python_cmd, run)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def native_host() -> Path:
    return cmake_build("native-host")


@pytest.fixture(scope="session")
def native_asan() -> Path:
    return cmake_build("native-asan", "-DLOWBIT_SANITIZE=ON", "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                       target="lowbit-tests")


@pytest.fixture(scope="session")
def native_aarch64() -> Path:
    need_tool("aarch64-linux-gnu-g++", "g++-aarch64-linux-gnu")
    need_tool("qemu-aarch64", "qemu-user")
    return cmake_build("native-aarch64", f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN_AARCH64}")


@pytest.fixture(scope="session")
def nat():
    import lowbit

    return lowbit.native()
