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


def test_c_api_bad_arguments_name_the_problem(native_host, root, tmp_path):
    """tests/c_api/bad_args.c: NULL handles, unknown flags, files that are not packages, bad
    indices, options, input names, dtypes, shapes, byte counts, calls out of order."""
    import numpy as np

    from lowbit.exporters.lbpk import write_package
    from lowbit.ir import Graph, Node, TensorInfo

    w = np.random.default_rng(0).standard_normal((3, 2, 3, 3)).astype(np.float32)
    g = Graph("bad_args", [Node("Conv", "conv", ["x", "w"], ["c"], {"pads": [1, 1, 1, 1]}),
                           Node("GlobalAveragePool", "gap", ["c"], ["y"])],
              [TensorInfo("x", "float32", (1, 2, 5, 5))], [TensorInfo("y", "float32", (1, 3, 1, 1))], {"w": w})
    pkg = write_package(g, tmp_path / "bad_args.lbpk", target="x86-64-avx2", scheme="fp32")
    cc = shutil.which("cc") or shutil.which("gcc")
    exe = tmp_path / "bad_args"
    r = run([cc, "-std=c11", "-Wall", "-Werror", "-I", root / "native" / "include", root / "tests" / "c_api" / "bad_args.c",
             "-o", exe, "-L", native_host, "-llowbit", f"-Wl,-rpath,{native_host}"])
    assert r.returncode == 0, r.stderr
    r = run([exe, pkg, tmp_path])
    assert r.returncode == 0 and "BAD ARGS OK" in r.stdout, r.stdout + r.stderr
