"""lowbit-kbench, the kernel benchmark without Python: every format x ISA path x threads runs,
its output agrees with the scalar path (the tool exits 1 on a mismatch), the JSON holds one row
per combination, and bad arguments get a clear message. Also the aarch64 build under qemu (NEON,
dotprod, i8mm). Tiny shapes: this checks the tool, it does not time anything."""
import json

import pytest

from lowbit_testutil import run

ARGS = ["--shape", "256x320", "--m", "1,5", "--threads", "1,2", "--rounds", "1", "--cold-mb", "2",
        "--formats", "q8,q4g32,q4g128,t2g128,c4g64"]


def _check(json_path, isas):
    data = json.loads(json_path.read_text())
    rows = data["rows"]
    assert {(r["format"], r["isa"], r["threads"], r["m"]) for r in rows} == {
        (f, i, t, m) for f in ("q8", "q4g32", "q4g128", "t2g128", "c4g64") for i in isas for t in (1, 2) for m in (1, 5)}
    for r in rows:
        assert r["max_rel_err"] <= 1e-4, r
        assert r["median_ms"] > 0 and r["gbps"] > 0 and r["kernel"]
        assert ("gemv" in r["kernel"]) == (r["m"] == 1), r
        assert r["kernel"].endswith("__ref") == (r["isa"] == "scalar"), r
        if r["m"] == 1:
            assert r["probe_gbps"] > 0
        else:
            assert r["peak_gops"] > 0
    return rows


def test_kbench_every_x86_path(native_host, nat, tmp_path):
    isas = ["scalar"] + [i for i in ("avx2", "avx512vnni") if i in set(nat.isa_usable())]
    out = tmp_path / "kb.json"
    r = run([native_host / "lowbit-kbench", *ARGS, "--isa", ",".join(isas), "--json", out])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "MISMATCH" not in r.stdout
    _check(out, isas)


@pytest.mark.parametrize("args,msg", [
    (["--formats", "q9"], "unknown format 'q9'"),
    (["--shape", "4096"], "--shape wants KxN"),
    (["--m", "0"], "--m wants positive integers"),
    (["--isa", "i8mm"], "ISA path 'i8mm'"),
    (["--shape", "100x64", "--formats", "q4g32", "--m", "1"], "not a multiple of the group size 32"),
])
def test_kbench_bad_arguments(native_host, args, msg):
    r = run([native_host / "lowbit-kbench", *args, "--rounds", "1", "--cold-mb", "1"])
    assert r.returncode in (1, 2), r.stdout + r.stderr
    assert msg in r.stderr, r.stderr


@pytest.mark.qemu
def test_kbench_aarch64_paths_under_qemu(native_aarch64, tmp_path):
    out = tmp_path / "kb.json"
    isas = ["scalar", "neon", "dotprod", "i8mm"]
    r = run(["qemu-aarch64", "-cpu", "max", native_aarch64 / "lowbit-kbench", *ARGS, "--isa", ",".join(isas),
             "--json", out])
    assert r.returncode == 0, r.stdout + r.stderr
    _check(out, isas)
