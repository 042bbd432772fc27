"""A plain C program compiled against lowbit.h and linked to liblowbit (shared and static)."""
import shutil

import pytest

from lowbit_testutil import run


@pytest.mark.parametrize("link", ["shared", "static"])
def test_c_program_uses_only_public_header(native_host, root, tmp_path, link):
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed (apt-get install gcc)"
    exe = tmp_path / f"smoke_{link}"
    lib = ["-L", native_host, "-llowbit", f"-Wl,-rpath,{native_host}"] if link == "shared" else \
          [native_host / "liblowbit.a", "-lstdc++", "-lpthread", "-lm"]
    r = run([cc, "-std=c11", "-Wall", "-Werror", "-I", root / "native" / "include",
             root / "tests" / "c_api" / "smoke.c", "-o", exe, *lib])
    assert r.returncode == 0, r.stderr
    r = run([exe])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "C API OK" in r.stdout
