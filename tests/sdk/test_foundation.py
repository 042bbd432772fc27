"""The Python package: import stays light, the CLI and doctor work, versions agree."""
import json
import re
import sys

from lowbit_testutil import ROOT, run


def test_import_does_not_pull_heavy_frameworks():
    code = ("import sys, lowbit, lowbit.cli, lowbit.exporters, lowbit.targets; lowbit.native(); "
            "bad = [m for m in ('torch', 'onnx', 'onnxruntime', 'tvm') if m in sys.modules]; "
            "print(bad); raise SystemExit(1 if bad else 0)")
    r = run([sys.executable, "-c", code])
    assert r.returncode == 0, r.stdout + r.stderr


def test_versions_agree(nat):
    import lowbit

    pyproject = (ROOT / "pyproject.toml").read_text()
    cmake = (ROOT / "native" / "CMakeLists.txt").read_text()
    v = re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1)
    assert lowbit.__version__ == v
    assert nat.version() == v
    assert f"project(lowbit VERSION {v}" in cmake


def test_doctor_json():
    r = run([sys.executable, "-m", "lowbit", "doctor", "--json"])
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["isa_active"] in info["isa_usable"]
    assert info["isa_best"] == info["isa_usable"][-1]
    assert info["threads"] >= 1
    assert "scalar" in info["isa_usable"]
    assert info["build"]["version"] == info["lowbit"]


def test_doctor_selfcheck_table():
    r = run([sys.executable, "-m", "lowbit", "doctor", "--selfcheck"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "kernel path" in r.stdout and "PASSED" in r.stdout


def test_doctor_refuses_forced_isa_the_cpu_lacks(nat):
    candidates = [p for p in ("avx512vnni", "i8mm", "neon", "avx2") if p not in nat.isa_usable()]
    r = run([sys.executable, "-m", "lowbit", "doctor"], env={"LOWBIT_ISA": candidates[0]})
    assert r.returncode == 1
    assert f"LOWBIT_ISA={candidates[0]} cannot run here" in r.stdout
    assert "usable paths" in r.stdout


def test_forced_path_honoured_in_process_kernels():
    code = "import lowbit; n = lowbit.native(); print(n.isa_active())"
    r = run([sys.executable, "-c", code], env={"LOWBIT_ISA": "scalar"})
    assert r.stdout.strip() == "scalar", r.stderr


def test_cli_help_lists_doctor():
    r = run([sys.executable, "-m", "lowbit", "--help"])
    assert r.returncode == 0
    assert "doctor" in r.stdout
