"""Session.run's per-run path (docs/runtime.md "Session 5: run overhead"): inputs are re-bound in
place every run (no per-run allocation in lb_session_set_input), dtypes are looked up in a cached
table; a session that alternates input shapes, sees a refused input in between, and hands out its
outputs must still give a fresh session's bits every time."""
import numpy as np
import pytest

import lowbit
from lowbit.exporters.lbpk import write_package
from lowbit.ir import Graph, Node, TensorInfo
from lowbit.runtime import RuntimeStatusError


@pytest.fixture(scope="module")
def dyn(tmp_path_factory):
    """x [n, 2, h, w] -> conv 3x3 (pad 1) -> relu -> y: both n and the spatial dims are dynamic."""
    rng = np.random.default_rng(3)
    g = Graph("dyn", [Node("Conv", "conv", ["x", "w", "b"], ["c"], {"pads": [1, 1, 1, 1]}),
                      Node("Relu", "relu", ["c"], ["y"])],
              [TensorInfo("x", "float32", ("n", 2, "h", "w"))], [TensorInfo("y", "float32", None)],
              {"w": rng.standard_normal((3, 2, 3, 3)).astype(np.float32),
               "b": rng.standard_normal(3).astype(np.float32)})
    p = tmp_path_factory.mktemp("overhead") / "dyn.lbpk"
    write_package(g, p, target="auto", scheme="fp32")
    return p


def _x(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("threads", [1, 2])
def test_run_overhead_rebinding_shapes_matches_fresh_sessions(dyn, threads):
    shapes = [(1, 2, 6, 7), (3, 2, 6, 7), (1, 2, 6, 7), (2, 2, 9, 4), (2, 2, 9, 4), (1, 2, 6, 7)]
    s = lowbit.load(dyn, threads=threads)
    for i, shp in enumerate(shapes):
        x = _x(shp, i)
        want = lowbit.load(dyn, threads=1).run({"x": x})["y"]
        got = s.run({"x": x})["y"]
        assert got.shape == (shp[0], 3, shp[2], shp[3])
        np.testing.assert_array_equal(got, want, err_msg=f"run {i}, shape {shp}")
        # a refused binding (wrong rank / wrong channel count) leaves the session usable
        with pytest.raises(RuntimeStatusError) as e:
            s.run({"x": _x((shp[0], 5, shp[2], shp[3]), 99)})
        assert e.value.status == "LB_ERR_SHAPE" and "[n, 2, h, w]" in str(e.value)
        with pytest.raises(RuntimeStatusError):
            s.run({"x": _x(shp[1:], 98)})
    np.testing.assert_array_equal(s.run({"x": x})["y"], want)


def test_run_overhead_outputs_are_not_overwritten_by_the_next_run(dyn):
    s = lowbit.load(dyn, threads=1)
    xa, xb = _x((1, 2, 6, 7), 10), _x((1, 2, 6, 7), 11)
    a = s.run({"x": xa})["y"]
    a_copy = a.copy()
    b = s.run({"x": xb})["y"]
    np.testing.assert_array_equal(a, a_copy)  # the first result is the caller's, not a view of the arena
    assert not np.array_equal(a, b)
    a[...] = 0  # and writing into it does not touch the session
    np.testing.assert_array_equal(s.run({"x": xb})["y"], b)


def test_run_overhead_dtype_table_every_dtype_kind(dyn):
    """The cached dtype table: equal-by-value dtypes map to their code, others are refused by name."""
    s = lowbit.load(dyn, threads=1)
    x = _x((1, 2, 6, 7), 5)
    want = s.run({"x": x})["y"]
    np.testing.assert_array_equal(s.run({"x": x.astype(np.dtype("<f4"))})["y"], want)
    assert s.run({"x": x})["y"].dtype == np.float32
    for bad in (np.float64, np.float16, np.int8, np.uint8, np.int32, np.int64, np.bool_, np.int16):
        with pytest.raises(RuntimeStatusError) as e:
            s.run({"x": x.astype(bad)})
        assert e.value.status == "LB_ERR_DTYPE", bad
