"""An op attribute present with the wrong JSON type (a hand-edited or foreign manifest whose hashes
are valid) is refused when the session plans (its first run) with LB_ERR_FORMAT naming the op and the attribute; it must not run
with the attribute's default (that would return a plausible but wrong result)."""
import numpy as np
import pytest

import lowbit
from lowbit.exporters.lbpk import write_package
from lowbit.exporters.lbpk_container import PackageReader
from lowbit.ir import Graph, Node, TensorInfo
from lowbit.runtime import RuntimeStatusError
from lowbit_testutil import rewrite_manifest


@pytest.fixture(scope="module")
def conv_pkg(tmp_path_factory):
    rng = np.random.default_rng(0)
    g = Graph("attrs", [Node("Conv", "conv", ["x", "w", "b"], ["y"], {"pads": [1, 1, 1, 1], "strides": [2, 2]})],
              [TensorInfo("x", "float32", (1, 2, 6, 6))], [TensorInfo("y", "float32", (1, 3, 3, 3))],
              {"w": rng.standard_normal((3, 2, 3, 3)).astype(np.float32),
               "b": rng.standard_normal(3).astype(np.float32)})
    p = tmp_path_factory.mktemp("attrs") / "conv.lbpk"
    write_package(g, p, target="x86-64-avx2", scheme="fp32")
    return p


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
    x = np.zeros((1, 2, 6, 6), np.float32)
    with pytest.raises(RuntimeStatusError) as ei:
        lowbit.load(rewrite_manifest(raw, man)).run({"x": x})
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
