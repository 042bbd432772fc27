"""Report aggregation and the JSON / trace / table renderings of a synthetic profile."""
import json

import pytest

from profiler_helpers import make_events
from lowbit.profiler import Report, build_report


def test_aggregation_times_shares_and_coverage(synthetic_report):
    r = synthetic_report
    names = [o["name"] for o in r.ops]
    assert names == ["fc1", "relu", "fc2"]
    fc1 = r.ops[0]
    assert fc1["time_ms"]["min"] == pytest.approx(2.0)
    assert fc1["time_ms"]["median"] == pytest.approx(2.002)
    assert fc1["time_ms"]["max"] == pytest.approx(2.004)
    assert sum(o["share"] for o in r.ops) == pytest.approx(1.0)
    assert r.data["ops_sum_over_e2e"] == pytest.approx(4.002 / 4.102)
    assert r.latency["median"] == pytest.approx(4.102) and r.latency["n"] == 5
    # fc1 moves 256*512+256+2048 bytes and does 2*256*512 ops in 2.002 ms.
    roof = fc1["roofline"]
    assert roof["gbps"] == pytest.approx((256 * 512 + 256 + 2048) / 2.002e-3 / 1e9)
    assert roof["bound"] == "memory"
    assert 0 < roof["fraction"] < 1


def test_scalar_fallback_of_quantized_op_is_flagged(synthetic_report):
    ops = {o["name"]: o for o in synthetic_report.ops}
    assert ops["fc2"]["warnings"] and "scalar fallback" in ops["fc2"]["warnings"][0]
    assert "avx2" in ops["fc2"]["warnings"][0]
    assert not ops["fc1"]["warnings"] and not ops["relu"]["warnings"]
    assert any(w.startswith("fc2: scalar fallback") for w in synthetic_report.warnings)


def test_float_fallback_and_forced_isa(device, roofline):
    ev = make_events()
    ev[0]["kernel"], ev[0]["quantized"] = "lb_gemm_f32_f32_f32_4x16__avx2", True
    forced = dict(device, isa_active="scalar")
    r = build_report([ev], [4_000_000], device=forced, roofline=roofline)
    w = {o["name"]: o["warnings"] for o in r.ops}
    assert any("float fallback" in x for x in w["fc1"])
    assert any("forced by LOWBIT_ISA=scalar" in x for x in w["fc2"])
    # A CPU whose best path is scalar has no fallback to flag.
    plain = build_report([make_events()], [4_000_000], device=dict(device, isa_best="scalar", isa_active="scalar"),
                         roofline=roofline)
    assert not any(o["warnings"] for o in plain.ops)


def test_json_round_trip_and_schema(synthetic_report, tmp_path):
    p = tmp_path / "p.json"
    text = synthetic_report.to_json(p)
    again = Report.from_json(p)
    assert again.data == json.loads(text) == synthetic_report.data
    assert Report.from_json(text).ops[2]["gap"]["snr_db"] == pytest.approx(synthetic_report.ops[2]["gap"]["snr_db"])
    with pytest.raises(ValueError):
        Report({"schema": "something/else"})


def test_chrome_trace(synthetic_report, tmp_path):
    trace = synthetic_report.to_trace(tmp_path / "t.json")
    json.loads((tmp_path / "t.json").read_text())
    ops = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["cat"] != "run"]
    assert [e["name"] for e in ops] == ["fc1", "relu", "fc2"]
    # The median run (index 2): fc1 starts at 0 and lasts 2.002 ms; events do not overlap.
    assert ops[0]["ts"] == 0 and ops[0]["dur"] == pytest.approx(2002.0)
    for a, b in zip(ops, ops[1:]):
        assert b["ts"] >= a["ts"] + a["dur"] - 1e-6
    assert ops[0]["args"]["kernel"] == "lb_gemv_f32_q8d_q8c_4x32__avx2" and ops[0]["args"]["isa"] == "avx2"
    assert any(e["ph"] == "M" and e["name"] == "process_name" for e in trace["traceEvents"])


def test_terminal_table(synthetic_report):
    t = synthetic_report.to_table()
    for needle in ("lb_gemv_f32_q8d_q8c_4x32__avx2", "lb_gemv_s32_q8_q8c__ref", "scalar", "warning: fc2",
                   "exact", "median", "Test CPU"):
        assert needle in t, needle
    row = next(line for line in t.splitlines() if line.startswith("0 ") and "fc1" in line)
    assert "2.002" in row and "50.0%" in row


def test_runtime_event_normalization_and_quantized_ops():
    from lowbit.profiler.collect import normalize_event, quantized_ops

    ev = normalize_event({"op_name": "conv1", "op_type": "Conv", "kernel": "lb_gemm_f32_q8d_q4g32_8x32__avx2",
                          "isa": "avx2", "shapes": "[1, 3] x [4, 3] -> [1, 4]", "start_ns": 0, "end_ns": 10,
                          "bytes_read": 7, "bytes_written": 3, "ops": 24})
    assert ev["name"] == "conv1" and ev["type"] == "Conv" and ev["shapes"] == {"text": "[1, 3] x [4, 3] -> [1, 4]"}
    assert (ev["int_ops"], ev["float_ops"]) == (24, 0)
    fl = normalize_event({"op_name": "add", "op_type": "Add", "kernel": "add_f32", "ops": 5, "start_ns": 0, "end_ns": 1})
    assert (fl["int_ops"], fl["float_ops"]) == (0, 5) and fl["bytes_read"] == 0
    man = {"tensors": {"w_q": {"dtype": "u8", "layout": "q4g32"}, "w_f": {"dtype": "f32"}},
           "ops": [{"name": "fc_q", "inputs": ["x", "w_q"]}, {"name": "fc_f", "inputs": ["x", "w_f"]}]}
    assert quantized_ops(man) == {"fc_q": True, "fc_f": False}


def test_adapter_reaches_a_wrapped_native_session():
    from lowbit.profiler.collect import SessionAdapter
    from profiler_helpers import FakeSession

    class Inner:
        arena_bytes = 4096

        def __init__(self):
            self.on = None

        def enable_profiling(self, on):
            self.on = on

        def profile_events(self):
            return [{"op_name": "a", "op_type": "Add", "kernel": "add_f32", "isa": "avx2", "shapes": "",
                     "start_ns": 0, "end_ns": 5, "bytes_read": 8, "bytes_written": 4, "ops": 1}]

    class Wrapper:
        def __init__(self):
            self._native = Inner()

        def run(self, feed):
            return {}

    w = Wrapper()
    a = SessionAdapter(w)
    a.set_profiling(True)
    assert w._native.on is True
    assert a.events()[0]["name"] == "a" and a.memory() == {"arena_bytes": 4096}
    assert SessionAdapter(FakeSession()).p is not None


def test_scalar_conv_in_float_is_flagged_but_not_elementwise(device, roofline):
    ev = make_events()
    for e in ev:
        e["quantized"] = False
        e["isa"] = "scalar"
    ev[0].update(type="Conv", kernel="conv2d_f32")
    ev[1].update(type="Add", kernel="add")
    ev[2].update(type="Reshape", kernel="reshape")
    r = build_report([ev], [4_000_000], device=dict(device, isa_active="scalar"), roofline=roofline)
    w = {o["name"]: o["warnings"] for o in r.ops}
    assert w["fc1"] and "conv2d_f32" in w["fc1"][0] and "forced by LOWBIT_ISA=scalar" in w["fc1"][0]
    assert not w["relu"] and not w["fc2"]
    assert r.warnings[0] == "LOWBIT_ISA forces the scalar path; this CPU runs avx2"
