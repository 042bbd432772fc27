"""The samples build and run: C classifier (CMake, liblowbit only), C++ multi-session app, Python MiniLM."""
import shutil
import subprocess
import sys

import numpy as np
import pytest

import lowbit
from runtime_helpers import run


def _cmake(src, build, native_host, root, lib="liblowbit.so"):
    r = run(["cmake", "-S", src, "-B", build, f"-DLOWBIT_INCLUDE_DIR={root / 'native' / 'include'}",
             f"-DLOWBIT_LIBRARY={native_host / lib}"])
    assert r.returncode == 0, r.stdout + r.stderr
    r = run(["cmake", "--build", build, "-j2"])
    assert r.returncode == 0, r.stdout + r.stderr


def test_samples_c_classifier_top5(effnet, native_host, root, tmp_path):
    _cmake(root / "samples" / "c_classifier", tmp_path / "b", native_host, root)
    from lowbit import zoo

    img = zoo.natural_images(2)[1]  # chelsea the cat
    from skimage.transform import resize

    img = (resize(img, (224, 224), order=1, anti_aliasing=True, preserve_range=True) + 0.5).astype(np.uint8)
    ppm = tmp_path / "cat.ppm"
    ppm.write_bytes(b"P6 224 224 255\n" + img.tobytes())
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"class{i}\n" for i in range(1000)))
    r = run([tmp_path / "b" / "classify", effnet.lbpk, ppm, labels, "--threads", "2"])
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.strip().splitlines()]
    assert len(rows) == 5 and rows[0][0] == "1" and rows[0][3] == f"class{rows[0][1]}"
    # same pixels through Python: the same top-5
    x = ((img.astype(np.float32) - 127) / 128).transpose(2, 0, 1)[None].copy()
    logits = lowbit.load(effnet.lbpk).run({"input": x})["logits"][0]
    assert [int(r[1]) for r in rows] == list(np.argsort(-logits)[:5])
    assert 281 <= int(rows[0][1]) <= 287  # a cat class of ImageNet (tabby 281 .. Egyptian cat 285)
    probs = [float(r[2]) for r in rows]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001


def test_samples_c_classifier_reports_bad_package(native_host, root, tmp_path):
    _cmake(root / "samples" / "c_classifier", tmp_path / "b", native_host, root, "liblowbit.a")
    bad = tmp_path / "bad.lbpk"
    bad.write_bytes(b"not a package at all" * 10)
    ppm = tmp_path / "x.ppm"
    ppm.write_bytes(b"P6 2 2 255\n" + bytes(12))
    r = run([tmp_path / "b" / "classify", bad, ppm])
    assert r.returncode == 1 and "LB_ERR_FORMAT" in r.stderr and "bad magic" in r.stderr


def test_samples_cpp_sessions_agree(effnet, native_host, root, tmp_path):
    _cmake(root / "samples" / "cpp_sessions", tmp_path / "b", native_host, root)
    r = run([tmp_path / "b" / "cpp_sessions", effnet.lbpk, "3", "2"])
    assert r.returncode == 0, r.stderr
    assert "3 sessions x 2 runs agree" in r.stdout
    err = float(r.stdout.split("golden")[1].split()[0])
    assert err < 1e-4


def test_samples_python_minilm(minilm, root):
    r = run([sys.executable, root / "samples" / "python" / "minilm_embeddings.py", "--package", minilm.lbpk,
             "A man is playing a guitar.", "Someone plays an instrument.", "Stocks fell sharply today."])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    norms = [float(line.split()[0]) for line in lines[:3]]
    assert all(abs(n - 1) < 1e-4 for n in norms)  # L2-normalised embeddings
    sim = np.array([[float(v) for v in line.split()] for line in lines[4:7]])
    assert sim[0, 1] > sim[0, 2] + 0.2  # the two music sentences are closer than music vs stocks
