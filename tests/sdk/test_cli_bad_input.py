"""`lowbit run / inspect / verify` on bad arguments and bad packages: exit status 1 and one
`lowbit <command>: error: ...` line naming what is wrong (never a Python traceback)."""
import json

import numpy as np
import pytest

from lowbit.cli import main
from lowbit.exporters.lbpk import write_package
from lowbit.exporters.lbpk_container import PackageReader
from lowbit.ir import Graph, Node, TensorInfo
from lowbit_testutil import replace_manifest_bytes, rewrite_manifest


@pytest.fixture(scope="module")
def pkg(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_bad")
    w = np.random.default_rng(0).standard_normal((3, 2, 3, 3)).astype(np.float32)
    g = Graph("cli_bad", [Node("Conv", "conv", ["x", "w"], ["c"], {"pads": [1, 1, 1, 1]}),
                          Node("GlobalAveragePool", "gap", ["c"], ["y"])],
              [TensorInfo("x", "float32", (1, 2, 5, 5))], [TensorInfo("y", "float32", (1, 3, 1, 1))], {"w": w})
    return write_package(g, d / "m.lbpk", target="x86-64-avx2", scheme="fp32")


def _fails(capsys, argv, *words):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 1, (argv, rc, err)
    assert f"lowbit {argv[0]}: error:" in err, err
    for w in words:
        assert w in err, (argv, w, err)
    return err


def test_cli_run_bad_arguments(pkg, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((1, 2, 5, 5), np.float32))
    np.save(tmp_path / "x64.npy", np.zeros((1, 2, 5, 5), np.float64))
    np.save(tmp_path / "small.npy", np.zeros((1, 2, 4, 5), np.float32))
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    _fails(capsys, ["run", str(tmp_path / "none.lbpk")], "none.lbpk", "does not exist")
    _fails(capsys, ["run", str(pkg)], "--input", "inputs: x")  # no golden inputs: says which to give
    _fails(capsys, ["run", str(pkg), "--input", "x"], "expected NAME=FILE.npy")
    _fails(capsys, ["run", str(pkg), "--input", f"x={tmp_path / 'missing.npy'}"], "missing.npy")
    _fails(capsys, ["run", str(pkg), "--input", f"x={tmp_path / 'junk.npy'}"], "junk.npy")
    _fails(capsys, ["run", str(pkg), "--input", f"z={tmp_path / 'x.npy'}"], "'z'", "'x'")
    _fails(capsys, ["run", str(pkg), "--input", f"x={tmp_path / 'small.npy'}"], "[1, 2, 5, 5]", "[1, 2, 4, 5]")
    _fails(capsys, ["run", str(pkg), "--input", f"x={tmp_path / 'x64.npy'}"], "float64")
    assert main(["run", str(pkg), "--input", f"x={tmp_path / 'x.npy'}"]) == 0
    capsys.readouterr()


def test_cli_inspect_and_verify_bad_packages(pkg, tmp_path, capsys):
    raw = pkg.read_bytes()
    (tmp_path / "short.lbpk").write_bytes(raw[:100])
    (tmp_path / "foreign.lbpk").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(300))
    flipped = bytearray(raw)
    flipped[PackageReader(pkg).sections["data.0"].offset] ^= 1
    (tmp_path / "flipped.lbpk").write_bytes(bytes(flipped))
    man = PackageReader(pkg).manifest
    (tmp_path / "badjson.lbpk").write_bytes(replace_manifest_bytes(raw, b"{not json"))
    broken = dict(man, ops=[{"name": "conv"}])  # ops without their fields
    (tmp_path / "broken.lbpk").write_bytes(rewrite_manifest(raw, broken))
    for cmd in ("inspect", "verify"):
        _fails(capsys, [cmd, str(tmp_path / "short.lbpk")], "short.lbpk")
        _fails(capsys, [cmd, str(tmp_path / "foreign.lbpk")], "not a lowbit package")
        _fails(capsys, [cmd, str(tmp_path / "badjson.lbpk")], "manifest")
        _fails(capsys, [cmd, str(tmp_path / "broken.lbpk")], "manifest")
        _fails(capsys, [cmd, str(tmp_path / "none.lbpk")], "none.lbpk")
    _fails(capsys, ["verify", str(tmp_path / "flipped.lbpk")], "data.0", "checksum")
    old = bytearray(raw)
    old[8] = 0  # format major 0: older than this runtime reads
    (tmp_path / "old.lbpk").write_bytes(bytes(old))
    _fails(capsys, ["verify", str(tmp_path / "old.lbpk")], "format 0.0", "re-export")
    _fails(capsys, ["inspect", str(tmp_path / "old.lbpk")], "format version 0.0")
    assert main(["inspect", str(pkg), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "cli_bad"
