"""The lb_llm_* C API from a plain C program (only lowbit_llm.h), static link."""
from __future__ import annotations

import shutil
import subprocess

from lowbit.llm.session import LlmSession


def test_llm_c_program_generates_like_python(native_host, root, tmp_path, tiny_fp32_pkg):
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed (apt-get install gcc)"
    exe = tmp_path / "llm_c_smoke"
    r = subprocess.run([cc, "-std=c11", "-Wall", "-Werror", "-I", str(root / "native" / "include"),
                        str(root / "tests" / "llm" / "llm_c_smoke.c"), "-o", str(exe),
                        str(native_host / "liblowbit.a"), "-lstdc++", "-lpthread", "-lm"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(exe), str(tiny_fp32_pkg)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    want = LlmSession(tiny_fp32_pkg).generate([5, 6, 7], 10, stop=[])
    assert lines[0] == ",".join(map(str, want))
    assert "context length 256" in lines[1]
