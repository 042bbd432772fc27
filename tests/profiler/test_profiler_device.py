"""Device measurements (read bandwidth, int8 peak), the fingerprint shared with the native
lowbit-profile, the per-device cache and `lowbit doctor --measure`. Only sanity bounds on the
measured numbers: this machine is shared, timings are not asserted."""
import json
import sys
from pathlib import Path

import pytest

import lowbit
from lowbit_testutil import run
from lowbit.profiler import device


@pytest.fixture
def profile_bin(native_host):
    """The native lowbit-profile of the host build (rebuilt from this checkout)."""
    return native_host / "lowbit-profile"


def test_measure_bandwidth_and_peak(nat):
    gbps = nat.measure_bandwidth(16 << 20, 1, 2)
    assert 0.05 < gbps < 2000
    best = nat.measure_int8_peak("auto", 1, 2)
    scalar = nat.measure_int8_peak("scalar", 1, 2)
    assert 0.01 < scalar and 0.01 < best < 1e5
    for isa in nat.isa_usable():
        assert nat.measure_int8_peak(isa, 1, 1) > 0


def test_measure_refuses_bad_arguments(nat):
    with pytest.raises(RuntimeError, match="LB_ERR_INVALID_ARG"):
        nat.measure_int8_peak("nonsense", 1, 1)
    with pytest.raises(RuntimeError, match="LB_ERR_INVALID_ARG"):
        nat.measure_bandwidth(1 << 20, -1, 1)
    unusable = [i for i in ("avx512vnni", "avx2", "neon", "dotprod", "i8mm") if i not in nat.isa_usable()]
    with pytest.raises(RuntimeError, match="LB_ERR_ISA"):
        nat.measure_int8_peak(unusable[0], 1, 1)


def test_fingerprint_matches_native_tool(profile_bin, tmp_path):
    r = run([profile_bin, "--device", "--threads", "1"], env={"LOWBIT_CACHE_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "lowbit.profile/1" and doc["tool"] == "lowbit-profile"
    fp = device.fingerprint(threads_used=1)
    for key in ("id", "cpu_model", "arch", "cores", "threads_used", "isa_best", "lowbit_version", "governor"):
        assert doc["device"][key] == fp[key], key
    assert sorted(doc["device"]["features"]) == fp["features"]
    assert doc["roofline"] is None


def test_native_tool_measures_and_python_renders(profile_bin, tmp_path):
    out = tmp_path / "dev.json"
    r = run([profile_bin, "--device", "--measure", "--threads", "1", "--json", out])
    assert r.returncode == 0, r.stderr
    rep = lowbit.profiler.load_report(out)
    assert rep.data["roofline"]["read_gbps"] > 0 and rep.data["roofline"]["int8_gops"] > 0
    assert rep.data["roofline"]["isa"] == lowbit.native().isa_best()
    assert "read" in rep.to_table() and 'id="plot-roofline"' in rep.to_html()
    assert run([profile_bin, "--bogus"]).returncode == 2


def test_cache_round_trip(monkeypatch, tmp_path):
    monkeypatch.setenv("LOWBIT_CACHE_DIR", str(tmp_path))
    assert device.load_cached() is None
    assert device.roofline_for(1)["source"] == "none"
    rec = device.measure_device(threads=2, bandwidth_bytes=8 << 20, repeats=1)
    path = Path(rec["cache_path"])
    assert path.parent == tmp_path and path.name == f"device-{device.fingerprint()['id']}.json"
    cached = device.load_cached()
    assert cached["measured"]["read_gbps"] == rec["measured"]["read_gbps"]
    roof = device.roofline_for(2)
    assert roof["source"] == "cache" and roof["threads"] == 2
    assert roof["read_gbps"] == rec["measured"]["read_gbps"]["2"]
    assert device.roofline_for(1)["threads"] == 1
    # force=False reuses the cache; an older microbenchmark version is measured again.
    assert device.measure_device(threads=2, force=False)["measured"]["measured_at"] == rec["measured"]["measured_at"]
    data = json.loads(path.read_text())
    data["measured"]["measure_version"] = -1
    path.write_text(json.dumps(data))
    assert device.load_cached() is None


def test_doctor_measure(tmp_path):
    r = run([sys.executable, "-m", "lowbit", "doctor", "--measure", "--json"], env={"LOWBIT_CACHE_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert any(k.startswith("read GB/s") for k in info["measured"])
    assert any(k.startswith("int8 GOPS") for k in info["measured"])
    assert list(tmp_path.glob("device-*.json"))
