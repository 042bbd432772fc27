"""Format 1.1 chunk tables (docs/package-format.md, "Chunk table"): SHA-256 per chunk of every
section larger than a chunk, written by PackageWriter, checked by the native reader (full and lazy
loads, one or several hashing threads) and by the Python reader. A flipped byte in any chunk is
reported with the section and the chunk; a damaged chunk table behind valid hashes is a FORMAT
error naming what is wrong; a package without a chunk table (format 1.0) verifies as before. The
native loads run in a child process, so that a crash is reported with the case that caused it."""
import hashlib
import json
import struct
import sys

import numpy as np
import pytest

from lowbit.exporters import lbpk_container as C
from lowbit_testutil import run

HEADER, ENTRY = struct.Struct("<8sHHIQQII32s"), struct.Struct("<40sIIQQ32s")


def _write(path, rows, *, chunk_bytes=4096, section_bytes=16 << 20):
    """A graph package (ids -> Gather(emb) -> y) whose `emb` is rows x 16 f32 (64 bytes a row)."""
    emb = ((np.arange(rows * 16, dtype=np.int64) * 2654435761) % 65521).astype(np.float32).reshape(rows, 16)
    with C.PackageWriter(path, chunk_bytes=chunk_bytes, section_bytes=section_bytes) as w:
        w.add_tensor("emb", emb)
        w.add_tensor("small", np.arange(8, dtype=np.float32))
        w.manifest.update({"kind": "graph", "model": "chunks", "target": "host", "scheme": "fp32",
                           "inputs": [{"name": "ids", "dtype": "i64", "shape": [1, 4]}],
                           "outputs": [{"name": "y", "dtype": "f32", "shape": [1, 4, 16]}],
                           "values": {}, "kernels": ["gather"],
                           "ops": [{"name": "g", "op": "Gather", "kernel": "gather", "inputs": ["emb", "ids"],
                                    "outputs": ["y"], "attrs": {"axis": 0}}]})
    return path


def _sections(raw):
    _, _, _, _, _, toff, n, esize, _ = HEADER.unpack_from(raw, 0)
    return [ENTRY.unpack_from(raw, toff + i * esize) for i in range(n)]


def _replace_section(raw, name, data):
    """`raw` with section `name`'s bytes replaced by `data` (appended after the last section),
    its SHA-256 and the table's recomputed: every hash valid, the content what the test says."""
    hdr = list(HEADER.unpack_from(raw, 0))
    ents = _sections(raw)
    off = -(-max(e[3] + e[4] for e in ents) // 64) * 64
    body = bytearray(raw[:off]) + data
    body += b"\0" * (-len(body) % 64)
    ents = [(e[0], e[1], e[2], off, len(data), hashlib.sha256(data).digest()) if e[0].rstrip(b"\0") == name.encode()
            else e for e in ents]
    table = b"".join(ENTRY.pack(*e) for e in ents)
    hdr[5], hdr[4], hdr[6], hdr[8] = len(body), len(body) + len(table), len(ents), hashlib.sha256(table).digest()
    body += table
    body[:128] = HEADER.pack(*hdr).ljust(128, b"\0")
    return bytes(body)


def _chunk_table(raw):
    e = next(e for e in _sections(raw) if e[1] == C.KIND_CHUNKS)
    return bytes(raw[e[3]:e[3] + e[4]])


CHILD = r'''
import json, sys
import lowbit._native as nat
out = []
for path in sys.argv[1:]:
    row = []
    for lazy in (False, True):
        try:
            m = nat.GraphModel(path, lazy=lazy)
            if lazy:
                m.verify()
            row.append("ok")
        except RuntimeError as exc:
            row.append(str(exc))
    out.append(row)
print(json.dumps(out))
'''


def _native(paths, threads=1, isa=None):
    """[full-load result, lazy-load + verify result] per package: "ok" or "STATUS: message"."""
    env = {"LOWBIT_NUM_THREADS": str(threads)}
    if isa:
        env["LOWBIT_ISA"] = isa
    r = run([sys.executable, "-c", CHILD, *map(str, paths)], env=env, timeout=300)
    assert r.returncode == 0, f"native reader crashed (rc {r.returncode}):\n{r.stderr[-3000:]}"
    return json.loads(r.stdout)


def _python(path):
    try:
        C.PackageReader(path).close()
        return "ok"
    except C.PackageError as exc:
        return str(exc)


def test_package_chunks_writer_layout(tmp_path):
    """The chunk table holds hashlib's SHA-256 of every chunk (the last one short), in section
    table order; the section table keeps every section's whole SHA-256, so a format 1.0 reader
    (which checks exactly those) still verifies a 1.1 package."""
    p = _write(tmp_path / "a.lbpk", 200, section_bytes=8192)  # emb 12800 B alone in data.0; 4 chunks, the last 512 B
    raw = p.read_bytes()
    assert HEADER.unpack_from(raw, 0)[1:3] == (1, 1)
    ents = _sections(raw)
    for name, kind, flags, off, size, sha in ents:
        assert flags == 0 and hashlib.sha256(raw[off:off + size]).digest() == sha
    t = _chunk_table(raw)
    cs, count, res = struct.unpack_from("<QII", t, 0)
    assert (cs, count, res) == (4096, 1, 0)
    name, size, nc, res = struct.unpack_from("<40sQQQ", t, 16)
    d0 = next(e for e in ents if e[0].rstrip(b"\0") == b"data.0")
    assert (name.rstrip(b"\0"), size, nc, res) == (b"data.0", d0[4], 4, 0) and d0[4] == 12800
    sec = raw[d0[3]:d0[3] + d0[4]]
    assert t[80:] == b"".join(hashlib.sha256(sec[i:i + 4096]).digest() for i in range(0, len(sec), 4096))
    r = C.PackageReader(p)
    assert r.manifest["format"] == "lbpk 1.1" and r.chunk_bytes == 4096 and len(r.sections["data.0"].chunks) == 4
    assert r.sections["data.1"].chunks is None  # 32 bytes: hashed whole
    assert _native([p]) == [["ok", "ok"]]


def test_package_chunks_old_format_unchanged(tmp_path):
    """chunk_bytes=0 (and any package with no section above a chunk) writes the format 1.0 bytes
    of the session-7 writer: no chunk table, minor 0; such packages verify whole sections, and a
    flipped byte is reported against the section table as before."""
    small = _write(tmp_path / "s.lbpk", 60).read_bytes()  # 3840 B: below one chunk
    assert small == _write(tmp_path / "s0.lbpk", 60, chunk_bytes=0).read_bytes()
    assert HEADER.unpack_from(small, 0)[2] == 0 and all(e[1] != C.KIND_CHUNKS for e in _sections(small))
    # a fixed input gives fixed bytes: the SHA-256 of the session-7 writer's output for it
    assert hashlib.sha256(small).hexdigest() == "6c19ccd92974499ccc155c77dd11873c1ee42df6fa73d70012d4c18089933983"
    old = _write(tmp_path / "o.lbpk", 600, chunk_bytes=0)
    raw = old.read_bytes()
    assert HEADER.unpack_from(raw, 0)[2] == 0 and C.PackageReader(old).manifest["format"] == "lbpk 1.0"
    d0 = next(e for e in _sections(raw) if e[0].rstrip(b"\0") == b"data.0")
    bad = bytearray(raw)
    bad[d0[3] + 20000] ^= 4
    (tmp_path / "ob.lbpk").write_bytes(bad)
    res = _native([old, tmp_path / "ob.lbpk"])
    assert res[0] == ["ok", "ok"]
    for msg in res[1]:
        assert msg.startswith("LB_ERR_CHECKSUM") and "section 'data.0' checksum mismatch: SHA-256 of its 38432 bytes" in msg, msg
    assert "'data.0' checksum mismatch (corrupted)" in _python(tmp_path / "ob.lbpk")


@pytest.mark.parametrize("threads,isa", [(1, None), (3, None), (2, "scalar")])
def test_package_chunks_flipped_byte_names_the_chunk(tmp_path, threads, isa):
    """A flipped byte in the first, a middle, the last full and the short last chunk, on one and
    several hashing threads (9 MiB: enough bytes for more than one) and on the portable SHA-256."""
    rows = (9 << 20) // 64 + 40  # 9 MiB + 2560 bytes: 2305 chunks of 4 KiB, the last 2560 B
    p = _write(tmp_path / "big.lbpk", rows, section_bytes=32 << 20)
    raw = p.read_bytes()
    d0 = next(e for e in _sections(raw) if e[0].rstrip(b"\0") == b"data.0")
    size = d0[4]
    n = -(-size // 4096)
    cases = {0: 0, 1000 * 4096 + 7: 1000, (n - 1) * 4096 - 1: n - 2, size - 1: n - 1}
    paths = [p]
    for pos in cases:
        bad = bytearray(raw)
        bad[d0[3] + pos] ^= 0x80
        paths.append(tmp_path / f"flip{pos}.lbpk")
        paths[-1].write_bytes(bad)
    res = _native(paths, threads=threads, isa=isa)
    assert res[0] == ["ok", "ok"]
    for (pos, chunk), row in zip(cases.items(), res[1:]):
        lo, hi = chunk * 4096, min(chunk * 4096 + 4096, size)
        want = f"section 'data.0' checksum mismatch in chunk {chunk} of {n} (bytes {lo}..{hi} of its {size})"
        for msg in row:
            assert msg.startswith("LB_ERR_CHECKSUM") and want in msg, (pos, msg)
    py = _python(paths[-1])
    assert f"'data.0' checksum mismatch in chunk {n - 1} of {n}" in py


def _bad_tables(raw):
    """(what, package bytes, message part) with a damaged chunk table behind valid hashes."""
    t = _chunk_table(raw)
    cs, count, _ = struct.unpack_from("<QII", t, 0)
    name, size, nc, _ = struct.unpack_from("<40sQQQ", t, 16)
    hdr, ent, digests = t[:16], t[16:80], t[80:]

    def table(h=hdr, e=ent, d=digests):
        return _replace_section(raw, "chunks", h + e + d)

    def entry(nm=name, sz=size, c=nc, res=0):
        return struct.pack("<40sQQQ", nm, sz, c, res)

    yield "chunk size 100", table(h=struct.pack("<QII", 100, count, 0)), "chunk size 100"
    yield "chunk size 0", table(h=struct.pack("<QII", 0, count, 0)), "chunk size 0"
    yield "chunk size 2^31", table(h=struct.pack("<QII", 1 << 31, count, 0)), "chunk size 2147483648"
    yield "chunk size 8192", table(h=struct.pack("<QII", 8192, count, 0)), "8192-byte chunks are"
    yield "header reserved", table(h=struct.pack("<QII", cs, count, 1)), "reserved"
    yield "count 2", table(h=struct.pack("<QII", cs, 2, 0)), "entry 1 names section"
    yield "count 0", table(h=struct.pack("<QII", cs, 0, 0)), "trailing bytes"
    yield "count 2^32-1", table(h=struct.pack("<QII", cs, 0xFFFFFFFF, 0)), "wrong count"
    yield "truncated header", _replace_section(raw, "chunks", t[:10]), "shorter than its 16-byte header"
    yield "empty", _replace_section(raw, "chunks", b""), "truncated"
    yield "truncated entry", _replace_section(raw, "chunks", t[:40]), "truncated or wrong count"
    yield "truncated digests", table(d=digests[:-32]), "truncated"
    yield "half a digest", table(d=digests[:-16]), "truncated"
    yield "trailing bytes", table(d=digests + b"\0" * 32), "trailing bytes"
    yield "size + 64", table(e=entry(sz=size + 64)), f"is {size + 64} bytes; the section table says {size}"
    yield "size 0", table(e=entry(sz=0)), "the section table says"
    yield "chunks + 1", table(e=entry(c=nc + 1)), f"{nc + 1} chunks"
    yield "chunks - 1", table(e=entry(c=nc - 1)), f"{nc - 1} chunks"
    yield "chunks 2^63", table(e=entry(c=1 << 63)), "chunks;"
    yield "entry reserved", table(e=entry(res=5)), "reserved"
    yield "unknown section", table(e=entry(nm=b"data.9".ljust(40, b"\0"))), "'data.9', which the section table lacks"
    yield "unterminated name", table(e=entry(nm=b"d" * 40)), "which the section table lacks"
    yield "manifest chunked", table(e=entry(nm=b"manifest".ljust(40, b"\0"))), "cannot be chunked"
    yield "listed twice", table(h=struct.pack("<QII", cs, 2, 0), e=ent + ent, d=digests + digests), "listed twice"
    two = bytearray(table())  # a second section of kind 4
    ents = _sections(two)
    toff = HEADER.unpack_from(two, 0)[5]
    i = next(k for k, e in enumerate(ents) if e[0].rstrip(b"\0") == b"small" or e[0].rstrip(b"\0") == b"data.1")
    ENTRY.pack_into(two, toff + i * 96, ents[i][0], C.KIND_CHUNKS, *ents[i][2:])
    hdr2 = list(HEADER.unpack_from(two, 0))
    hdr2[8] = hashlib.sha256(bytes(two[toff:toff + len(ents) * 96])).digest()
    two[:128] = HEADER.pack(*hdr2).ljust(128, b"\0")
    yield "two tables", bytes(two), "two chunk tables"


def test_package_chunks_bad_table(tmp_path):
    """Every damaged chunk table is refused by both readers with FORMAT and a message that says
    what is wrong; then every byte of the table is set to 0, 0xff and flipped (hashes valid): each
    load either works or fails with a status and a message, never a crash, and the two readers
    agree on which packages are good."""
    raw = _write(tmp_path / "t.lbpk", 200, section_bytes=8192).read_bytes()
    cases = list(_bad_tables(raw))
    paths = []
    for k, (what, data, _) in enumerate(cases):
        paths.append(tmp_path / f"bad{k}.lbpk")
        paths[-1].write_bytes(data)
    for (what, _, part), row, path in zip(cases, _native(paths), paths):
        for msg in row:
            assert msg.startswith("LB_ERR_FORMAT") and "chunk" in msg and part in msg, (what, msg)
        py = _python(path)
        assert "chunk" in py and part.replace("'", "") in py.replace("'", ""), (what, py)
    t = _chunk_table(raw)
    fuzz = []
    for i in range(len(t)):
        for v in {0, 0xFF, t[i] ^ 1} - {t[i]}:
            fuzz.append(tmp_path / f"f{i}_{v}.lbpk")
            fuzz[-1].write_bytes(_replace_section(raw, "chunks", t[:i] + bytes([v]) + t[i + 1:]))
    for path, row in zip(fuzz, _native(fuzz)):
        py = _python(path)
        for msg in row:
            assert msg == "ok" or msg.split(":")[0] in ("LB_ERR_FORMAT", "LB_ERR_CHECKSUM"), (path.name, msg)
        assert (row[0] == "ok") == (py == "ok"), (path.name, row, py)
        path.unlink()


def test_package_chunks_python_checks_both_hashes(tmp_path):
    """A package whose chunk hashes are right but whose whole-section hash is wrong (only a writer
    bug makes one: a format 1.0 reader would refuse it, the native 1.1 reader checks the chunks)
    is refused by the Python reader, which checks both."""
    raw = bytearray(_write(tmp_path / "w.lbpk", 200, section_bytes=8192).read_bytes())
    ents = _sections(raw)
    toff = HEADER.unpack_from(raw, 0)[5]
    i = next(k for k, e in enumerate(ents) if e[0].rstrip(b"\0") == b"data.0")
    ENTRY.pack_into(raw, toff + i * 96, *ents[i][:5], b"\x11" * 32)
    hdr = list(HEADER.unpack_from(raw, 0))
    hdr[8] = hashlib.sha256(bytes(raw[toff:toff + len(ents) * 96])).digest()
    raw[:128] = HEADER.pack(*hdr).ljust(128, b"\0")
    (tmp_path / "x.lbpk").write_bytes(raw)
    assert "'data.0' checksum mismatch (corrupted)" in _python(tmp_path / "x.lbpk")
    assert _native([tmp_path / "x.lbpk"]) == [["ok", "ok"]]


def test_package_chunks_writer_drops_copied_table(tmp_path):
    """A rewriter that copies every blob of a package (embed_tvm does) gets a fresh chunk table."""
    src = C.PackageReader(_write(tmp_path / "a.lbpk", 200, section_bytes=8192))
    with C.PackageWriter(tmp_path / "b.lbpk", chunk_bytes=8192) as w:
        w.add_tensor("emb", src.tensor("emb"))
        for name, s in src.sections.items():
            if s.kind not in (C.KIND_MANIFEST, C.KIND_TENSORS):
                w.add_blob(name, bytes(src.section_bytes(name)), s.kind)
    r = C.PackageReader(tmp_path / "b.lbpk")
    assert r.chunk_bytes == 8192 and [s.kind for s in r.sections.values()].count(C.KIND_CHUNKS) == 1
    with pytest.raises(ValueError, match="chunk_bytes"):
        C.PackageWriter(tmp_path / "c.lbpk", chunk_bytes=1000)
