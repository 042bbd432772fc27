"""The AVX-512 VNNI kernels on a CPU without AVX-512: their sources are compiled against SIMDe's
portable intrinsics (tests/kernels/avx512_emu/immintrin.h) and run through the families'
self-checks in place of the AVX2 entries. On a CPU with AVX-512 VNNI the native suite runs them
for real (tests/native); this keeps them checked everywhere else."""
import shutil
import subprocess
from pathlib import Path

import pytest

from lowbit_testutil import REQUIRE_ALL, ROOT, run

SIMDE = Path("/usr/include/simde/x86/avx512.h")


INC = ["-I", str(ROOT / "tests/kernels/avx512_emu"), "-I", str(ROOT / "native/kernels"),
       "-I", str(ROOT / "native/include"), "-I", str(ROOT / "native/src")]


def _emulated_exe(native_host, tmp_path, kernel_sources, main: str) -> Path:
    """Compiles the AVX-512 kernel sources against SIMDe and links them with tests/kernels/avx512_emu/MAIN and
    liblowbit.a; skips (fails under `make test`) without SIMDe."""
    if not SIMDE.exists() or not shutil.which("g++"):
        msg = "SIMDe headers not found: apt-get install libsimde-dev (or run `make system-deps`)"
        if REQUIRE_ALL:
            pytest.fail(msg)
        pytest.skip(msg)
    objs = []
    for src in kernel_sources:
        obj = tmp_path / (src.stem + ".o")
        r = subprocess.run(["g++", "-O1", "-std=c++17", "-w", "-D__AVX512VNNI__", "-D__AVX512BW__", "-D__AVX512DQ__",
                            "-DSIMDE_NO_NATIVE", *INC, "-c", str(src), "-o", str(obj)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-3000:]
        objs.append(str(obj))
    exe = tmp_path / Path(main).stem
    r = subprocess.run(["g++", "-O1", "-std=c++17", "-w", "-DLB_HAVE_AVX2=1", "-DLB_HAVE_AVX512VNNI=1", *INC,
                        "-I", str(native_host / "generated"), str(ROOT / "tests/kernels/avx512_emu" / main), *objs,
                        str(native_host / "liblowbit.a"), "-lpthread", "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return exe


def test_avx512vnni_kernels_emulated(native_host, tmp_path):
    exe = _emulated_exe(native_host, tmp_path, sorted((ROOT / "native/kernels").glob("*/*_avx512vnni.cpp")),
                        "emu_main.cpp")
    r = run([exe])
    assert r.returncode == 0, r.stdout[-4000:]
    assert "0 failed" in r.stdout and " 0 kernels" not in r.stdout, r.stdout[-2000:]


def test_avx512vnni_q8_gemm_blocks_emulated(native_host, tmp_path):
    """The w8a8 GEMM's M, N and K blocks on shapes beyond the self-check's (q8_tiles_main.cpp)."""
    exe = _emulated_exe(native_host, tmp_path, [ROOT / "native/kernels/mm_q8/mm_q8_avx512vnni.cpp"],
                        "q8_tiles_main.cpp")
    r = run([exe])
    assert r.returncode == 0, r.stdout[-4000:]
    assert "8 checks, 0 failed" in r.stdout, r.stdout[-2000:]
