"""Shared fixtures: repository paths and native builds (host, sanitizers, aarch64) made once
per test session with CMake, serialized with a file lock so parallel shells do not collide."""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
TOOLCHAIN_AARCH64 = ROOT / "targets" / "toolchains" / "aarch64-linux-gnu.cmake"

# `make test` sets LOWBIT_REQUIRE_ALL=1: then a missing cross compiler or qemu is a failure,
# not a skip, so CI cannot pass without running the ARM paths.
REQUIRE_ALL = os.environ.get("LOWBIT_REQUIRE_ALL") == "1"


def _need_tool(tool: str, package: str) -> None:
    if shutil.which(tool):
        return
    msg = f"{tool} not found: apt-get install {package} (or run `make system-deps`)"
    if REQUIRE_ALL:
        pytest.fail(msg)
    pytest.skip(msg)


def cmake_build(name: str, *defines: str) -> Path:
    """Configure and build native/ into build/<name> (incremental); returns the build dir."""
    out = BUILD / name
    out.mkdir(parents=True, exist_ok=True)
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    with open(BUILD / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (out / "CMakeCache.txt").exists():
                subprocess.run(["cmake", "-S", str(ROOT / "native"), "-B", str(out), *gen,
                                "-DCMAKE_BUILD_TYPE=Release", *defines],
                               check=True, capture_output=True, text=True)
            r = subprocess.run(["cmake", "--build", str(out), "-j", str(os.cpu_count() or 2)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                pytest.fail(f"native build {name} failed:\n{r.stdout[-6000:]}\n{r.stderr[-3000:]}")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return out


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def native_host() -> Path:
    return cmake_build("native-host")


@pytest.fixture(scope="session")
def native_asan() -> Path:
    return cmake_build("native-asan", "-DLOWBIT_SANITIZE=ON", "-DCMAKE_BUILD_TYPE=RelWithDebInfo")


@pytest.fixture(scope="session")
def native_aarch64() -> Path:
    _need_tool("aarch64-linux-gnu-g++", "g++-aarch64-linux-gnu")
    _need_tool("qemu-aarch64", "qemu-user")
    return cmake_build("native-aarch64", f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN_AARCH64}")


@pytest.fixture(scope="session")
def nat():
    import lowbit

    return lowbit.native()


def run(cmd, env=None, timeout=600, **kw) -> subprocess.CompletedProcess:
    """Runs a command, returning the completed process (text output)."""
    full_env = dict(os.environ)
    full_env.pop("LOWBIT_ISA", None)
    if env:
        full_env.update(env)
    return subprocess.run([str(c) for c in cmd], env=full_env, capture_output=True, text=True,
                          timeout=timeout, **kw)


def python_cmd() -> list:
    return [sys.executable]
