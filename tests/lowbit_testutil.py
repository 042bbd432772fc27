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

# The kernel ISAs a dispatch path may run: a path's table may fall back to a weaker family's kernel where
# that one is faster on real hardware (the avx512vnni path kept the AVX2 ternary GEMV until session 10;
# LOWBIT_AVX2_T2_GEMV=1 still selects it), ops use AVX2 code where they have no AVX-512 variant, and the
# scalar reference runs where a path has nothing else.
ISA_INCLUDES = {
    "scalar": {"scalar"},
    "avx2": {"scalar", "avx2"},
    "avx512vnni": {"scalar", "avx2", "avx512vnni"},
    "neon": {"scalar", "neon"},
    "dotprod": {"scalar", "neon", "dotprod"},
    "i8mm": {"scalar", "neon", "dotprod", "i8mm"},
}


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


def rewrite_manifest(raw: bytes, manifest: dict) -> bytes:
    """The .lbpk bytes `raw` with its manifest replaced by `manifest` (JSON), the other sections
    kept in place, section table and hashes recomputed: a package whose checksums are all valid
    but whose manifest says something else (tests of the readers' checks behind the hashes)."""
    import json

    return replace_manifest_bytes(raw, json.dumps(manifest).encode())


def replace_manifest_bytes(raw: bytes, text: bytes) -> bytes:
    """`raw` with a manifest section of arbitrary bytes `text` (need not be JSON), hashes valid."""
    import hashlib
    import struct

    header, entry = struct.Struct("<8sHHIQQII32s"), struct.Struct("<40sIIQQ32s")
    magic, major, minor, flags, _, toff, n, esize, _ = header.unpack_from(raw, 0)
    keep = [e for e in (entry.unpack_from(raw, toff + i * esize) for i in range(n)) if e[0].rstrip(b"\0") != b"manifest"]
    off = -(-max([e[3] + e[4] for e in keep] + [128]) // 64) * 64
    body = bytearray(raw[:off]) + text
    body += b"\0" * (-len(body) % 64)
    ents = keep + [(b"manifest".ljust(40, b"\0"), 1, 0, off, len(text), hashlib.sha256(text).digest())]
    table = b"".join(entry.pack(*e) for e in ents)
    toff2 = len(body)
    body += table
    body[:128] = header.pack(magic, major, minor, flags, len(body), toff2, len(ents), esize,
                             hashlib.sha256(table).digest()).ljust(128, b"\0")
    return bytes(body)
