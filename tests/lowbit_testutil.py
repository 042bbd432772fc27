"""Helpers shared by every test folder: repository paths, native builds (host, sanitizers,
aarch64) made with CMake under a file lock, and a subprocess runner.

Import them as `from lowbit_testutil import ...`, never `from conftest import ...`: pytest loads
every folder's conftest.py as a module named `conftest`, so that name means a different file
depending on collection order.
"""
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


def need_tool(tool: str, package: str) -> None:
    """Skips (or, under `make test`, fails) when a command-line tool is missing."""
    if shutil.which(tool):
        return
    msg = f"{tool} not found: apt-get install {package} (or run `make system-deps`)"
    if REQUIRE_ALL:
        pytest.fail(msg)
    pytest.skip(msg)


def cmake_build(name: str, *defines: str, target: str = "") -> Path:
    """Configure and build native/ into build/<name> (incremental; only `target` when given);
    returns the build dir."""
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
            r = subprocess.run(["cmake", "--build", str(out), "-j", str(os.cpu_count() or 2),
                                *(["--target", target] if target else [])],
                               capture_output=True, text=True)
            if r.returncode != 0:
                pytest.fail(f"native build {name} failed:\n{r.stdout[-6000:]}\n{r.stderr[-3000:]}")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return out



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
