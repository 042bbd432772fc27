"""The .lbpk container layer (pure Python writer and reader) against the spec in docs/package-format.md."""
import hashlib
import struct

import numpy as np
import pytest

from lowbit.exporters import lbpk_container as C


def _write(path, **kw):
    with C.PackageWriter(path, **kw) as w:
        w.manifest["model"] = "t"
        w.add_tensor("a", np.arange(10, dtype=np.float32))
        w.add_tensor("b", np.arange(6, dtype=np.int64).reshape(2, 3), layout="plain")
        w.add_blob("vocab", b"hello")
    return path


def test_runtime_container_layout_matches_spec(tmp_path):
    p = _write(tmp_path / "x.lbpk", section_bytes=64)
    raw = p.read_bytes()
    magic, major, minor, flags, size, toff, n, esize, tsha = struct.unpack_from("<8sHHIQQII32s", raw, 0)
    assert magic == b"LBPK\x00\r\n\x1a" and (major, minor, flags) == (1, 0, 0)
    assert size == len(raw) and esize == 96 and toff % 64 == 0
    assert raw[72:128] == b"\0" * 56
    table = raw[toff:toff + n * 96]
    assert hashlib.sha256(table).digest() == tsha
    names = []
    for i in range(n):
        name, kind, sflags, off, ssize, sha = struct.unpack_from("<40sIIQQ32s", table, i * 96)
        assert off % 64 == 0 and sflags == 0
        assert hashlib.sha256(raw[off:off + ssize]).digest() == sha
        names.append((name.rstrip(b"\0").decode(), kind))
    # a 64-byte section limit puts each tensor in its own data section
    assert names == [("data.0", 2), ("data.1", 2), ("vocab", 3), ("manifest", 1)]
    r = C.PackageReader(p)
    assert r.manifest["model"] == "t" and r.manifest["format"] == "lbpk 1.0"
    assert r.manifest["tensors"]["b"]["layout"] == "plain"
    np.testing.assert_array_equal(r.tensor("a"), np.arange(10, dtype=np.float32))
    np.testing.assert_array_equal(r.tensor("b"), np.arange(6).reshape(2, 3))
    assert bytes(r.section_bytes("vocab")) == b"hello"


def test_runtime_container_reader_rejects_damage(tmp_path):
    p = _write(tmp_path / "x.lbpk")
    raw = bytearray(p.read_bytes())
    bad = tmp_path / "bad.lbpk"
    bad.write_bytes(raw[:-1])
    with pytest.raises(C.PackageError, match="truncated"):
        C.PackageReader(bad)
    flipped = bytearray(raw)
    flipped[C.HEADER_SIZE] ^= 1  # first byte of data.0
    bad.write_bytes(flipped)
    with pytest.raises(C.PackageError, match="data.0"):
        C.PackageReader(bad)
    C.PackageReader(bad, verify=False)  # lazy: only the manifest is checked up front
    newer = bytearray(raw)
    newer[8] = 2
    bad.write_bytes(newer)
    with pytest.raises(C.PackageError, match="format version 2"):
        C.PackageReader(bad)


def test_runtime_container_writer_is_atomic(tmp_path):
    out = tmp_path / "y.lbpk"
    with pytest.raises(ValueError):
        with C.PackageWriter(out) as w:
            w.add_tensor("a", np.zeros(3, np.float32))
            w.add_tensor("a", np.zeros(3, np.float32))
    assert not out.exists() and list(tmp_path.iterdir()) == []
