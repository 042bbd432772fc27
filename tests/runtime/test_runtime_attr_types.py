"""An op attribute present with the wrong JSON type (a hand-edited or foreign manifest whose hashes
are valid) is refused when the session plans with LB_ERR_FORMAT naming the op and the attribute: at load when every
input shape is static, else at the first run. It must not run with the attribute's default (that would return a
plausible but wrong result)."""
import numpy as np
import pytest

import lowbit
from lowbit.exporters.lbpk import write_package
from lowbit.exporters.lbpk_container import PackageReader
from lowbit.ir import Graph, Node, TensorInfo
from lowbit.runtime import RuntimeStatusError
from lowbit_testutil import rewrite_manifest


def _conv_package(path, x_shape, y_shape):
    rng = np.random.default_rng(0)
    g = Graph("attrs", [Node("Conv", "conv", ["x", "w", "b"], ["y"], {"pads": [1, 1, 1, 1], "strides": [2, 2]})],
              [TensorInfo("x", "float32", x_shape)], [TensorInfo("y", "float32", y_shape)],
              {"w": rng.standard_normal((3, 2, 3, 3)).astype(np.float32),
               "b": rng.standard_normal(3).astype(np.float32)})
    write_package(g, path, target="x86-64-avx2", scheme="fp32")
    return path


@pytest.fixture(scope="module")
def conv_pkg(tmp_path_factory):
    return _conv_package(tmp_path_factory.mktemp("attrs") / "conv.lbpk", (1, 2, 6, 6), (1, 3, 3, 3))


def _op(man, name="conv"):
    return next(o for o in man["ops"] if o["name"] == name)


@pytest.mark.parametrize("key,value,what", [
    ("strides", "2", "a list of integers"),          # a string where a list belongs
    ("strides", [2, "2"], "a list of integers"),     # a string element
    ("pads", [1, 1, 1.5, 1], "a list of integers"),  # a fractional element
    ("group", [1], "an integer"),                     # a list where an int belongs
    ("group", 1.5, "an integer"),
    ("auto_pad", 3, "a string"),
])
def test_wrong_typed_attribute_is_refused_with_its_name(conv_pkg, key, value, what):
    raw = conv_pkg.read_bytes()
    man = PackageReader(conv_pkg).manifest
    _op(man)["attrs"][key] = value
    with pytest.raises(RuntimeStatusError) as ei:  # static input shapes: the session plans at load
        lowbit.load(rewrite_manifest(raw, man))
    msg = str(ei.value)
    assert ei.value.status == "LB_ERR_FORMAT", msg
    assert f"attribute '{key}' must be {what}" in msg and "conv" in msg, msg


def test_well_typed_attributes_still_load(conv_pkg):
    raw = conv_pkg.read_bytes()
    man = PackageReader(conv_pkg).manifest
    x = np.random.default_rng(1).standard_normal((1, 2, 6, 6)).astype(np.float32)
    want = lowbit.load(conv_pkg).run({"x": x})["y"]
    _op(man)["attrs"]["group"] = 1  # explicit default, an int: same result
    got = lowbit.load(rewrite_manifest(raw, man)).run({"x": x})["y"]
    np.testing.assert_array_equal(got, want)


def test_dynamic_shapes_refuse_at_the_first_run(tmp_path):
    """With a dynamic input dim the plan waits for the shapes: the load succeeds, the first run fails cleanly,
    and so does every later one (the session never runs with the default)."""
    p = _conv_package(tmp_path / "dyn.lbpk", ("n", 2, 6, 6), None)
    raw = p.read_bytes()
    man = PackageReader(p).manifest
    _op(man)["attrs"]["strides"] = [2, "2"]
    s = lowbit.load(rewrite_manifest(raw, man))
    x = np.zeros((2, 2, 6, 6), np.float32)
    for _ in range(2):
        with pytest.raises(RuntimeStatusError) as ei:
            s.run({"x": x})
        assert ei.value.status == "LB_ERR_FORMAT" and "attribute 'strides'" in str(ei.value), str(ei.value)
