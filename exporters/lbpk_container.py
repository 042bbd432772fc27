"""The .lbpk container: header, section table, JSON manifest and 64-byte-aligned tensor data.

This layer knows nothing about graphs: the model writer (``lbpk.py``) and the LLM writer both
put their tensors and manifest through it. The byte layout is specified in
``docs/package-format.md``; the native reader is ``native/src/package.{h,cpp}``.
"""
from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

from lowbit.fsutil import publish

MAGIC = b"LBPK\x00\r\n\x1a"
FORMAT_MAJOR = 1
FORMAT_MINOR = 1  # newest minor known; a package without a chunk table is written as 1.0
HEADER_SIZE = 128
ENTRY_SIZE = 96
ALIGN = 64
NAME_BYTES = 40

KIND_MANIFEST = 1
KIND_TENSORS = 2
KIND_BLOB = 3
KIND_CHUNKS = 4  # format 1.1 chunk table (SHA-256 per chunk of the sections larger than a chunk)
CHUNKS_SECTION = "chunks"
CHUNK_BYTES = 1 << 20  # default chunk size of the writer

# header: magic, major, minor, flags, file_size, table_offset, n_sections, entry_size, table_sha256
_HEADER = struct.Struct("<8sHHIQQII32s")
# entry: name, kind, flags, offset, size, sha256
_ENTRY = struct.Struct("<40sIIQQ32s")
# chunk table: chunk size, entry count, reserved; entry: section name, section size, chunk count, reserved
_CHUNK_HEADER = struct.Struct("<QII")
_CHUNK_ENTRY = struct.Struct("<40sQQQ")
assert _ENTRY.size == ENTRY_SIZE and _HEADER.size <= HEADER_SIZE
assert _CHUNK_HEADER.size == 16 and _CHUNK_ENTRY.size == 64

# numpy dtype name <-> package dtype name (the runtime's names)
DTYPES = {
    "float32": "f32", "float16": "f16", "int8": "i8", "uint8": "u8", "int32": "i32",
    "int64": "i64", "bool": "bool", "int16": "i16",
}
NP_DTYPES = {v: k for k, v in DTYPES.items()}


class PackageError(ValueError):
    """A malformed, truncated, corrupted or unsupported package (message names the part)."""


def _align(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


@dataclass
class Section:
    name: str
    kind: int
    offset: int
    size: int
    sha256: bytes
    chunks: Optional[List[bytes]] = None  # format 1.1: SHA-256 of each chunk (chunked sections only)


class _SectionHash:
    """SHA-256 of a section's bytes as they are written: of the whole, and of each ``chunk``-byte
    chunk (0: no chunks)."""

    def __init__(self, chunk: int):
        self.whole = hashlib.sha256()
        self.chunk = chunk
        self.done: List[bytes] = []
        self.cur = hashlib.sha256()
        self.fill = 0

    def update(self, data: bytes) -> None:
        self.whole.update(data)
        mv = memoryview(data)
        while self.chunk and len(mv):
            take = min(self.chunk - self.fill, len(mv))
            self.cur.update(mv[:take])
            self.fill += take
            mv = mv[take:]
            if self.fill == self.chunk:
                self.done.append(self.cur.digest())
                self.cur, self.fill = hashlib.sha256(), 0

    def chunk_digests(self, size: int) -> Optional[List[bytes]]:
        """The chunks' digests for a section larger than one chunk, else None (hashed whole)."""
        if not self.chunk or size <= self.chunk:
            return None
        return self.done + ([self.cur.digest()] if self.fill else [])


class PackageWriter:
    """Streams sections into a temporary file next to ``path``; ``close()`` writes the section
    table, the manifest and the header and renames the file into place (never a half-written
    package at ``path``).

    Tensors go into data sections of at most ``section_bytes`` each (named ``data.0``,
    ``data.1``, ...), so that the lazy mode can check them one at a time. A section larger than
    ``chunk_bytes`` (blobs too, not the manifest) also gets a SHA-256 per chunk in a chunk table
    (format 1.1), so that the loader can hash one section on many streams and threads; the
    whole-section SHA-256 stays in the section table, so readers of format 1.0 still verify the
    package. ``chunk_bytes=0``: no chunk table, a format 1.0 package (the session-7 writer's bytes).
    """

    def __init__(self, path: Union[str, Path], *, section_bytes: int = 16 << 20, chunk_bytes: int = CHUNK_BYTES):
        if chunk_bytes and (chunk_bytes < 4096 or chunk_bytes % 64 or chunk_bytes > 1 << 30):
            raise ValueError(f"chunk_bytes={chunk_bytes}: must be 0 or a multiple of 64 from 4096 to 2**30")
        self.path = Path(path)
        self.manifest: Dict[str, Any] = {}
        self.tensors: Dict[str, Dict[str, Any]] = {}
        self._sections: List[Section] = []
        self._section_bytes = section_bytes
        self._chunk_bytes = chunk_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
        self._tmp = Path(tmp)
        self._f = os.fdopen(fd, "w+b")
        self._f.write(b"\0" * HEADER_SIZE)
        self._open_data: Optional[Dict[str, Any]] = None  # current data section being filled
        self._closed = False

    # -- sections ------------------------------------------------------------------------
    def _pad_to_align(self) -> None:
        pos = self._f.tell()
        if pos % ALIGN:
            self._f.write(b"\0" * (ALIGN - pos % ALIGN))

    def _finish_data(self) -> None:
        d = self._open_data
        if d is None:
            return
        h = d["hash"]
        self._sections.append(Section(d["name"], KIND_TENSORS, d["offset"], d["size"], h.whole.digest(),
                                      h.chunk_digests(d["size"])))
        self._open_data = None

    def add_blob(self, name: str, data: bytes, kind: int = KIND_BLOB) -> None:
        """A raw section (its own SHA-256), e.g. a tokenizer file. A chunk table (kind 4) copied
        from another package is dropped: ``close()`` writes this package's own."""
        if kind == KIND_CHUNKS:
            return
        self._add_section(name, data, kind, self._chunk_bytes if kind != KIND_MANIFEST else 0)

    def _add_section(self, name: str, data: bytes, kind: int, chunk: int) -> None:
        self._finish_data()
        self._check_name(name)
        self._pad_to_align()
        off = self._f.tell()
        self._f.write(data)
        h = _SectionHash(chunk)
        h.update(data)
        self._sections.append(Section(name, kind, off, len(data), h.whole.digest(), h.chunk_digests(len(data))))

    def add_tensor(self, name: str, array: np.ndarray, **meta: Any) -> Dict[str, Any]:
        """Stores ``array`` (C order) 64-byte aligned; returns its manifest entry.
        Extra keyword arguments (e.g. ``layout=...``) are kept in the entry."""
        if name in self.tensors:
            raise ValueError(f"tensor {name!r} added twice")
        arr = np.ascontiguousarray(array)
        dt = DTYPES.get(arr.dtype.name)
        if dt is None:
            raise ValueError(f"tensor {name!r}: dtype {arr.dtype} cannot be stored")
        raw = arr.tobytes()
        d = self._open_data
        if d is not None and d["size"] > 0 and _align(d["size"]) + len(raw) > self._section_bytes:
            self._finish_data()
            d = None
        if d is None:
            self._pad_to_align()
            d = self._open_data = {"name": f"data.{sum(s.kind == KIND_TENSORS for s in self._sections)}",
                                   "offset": self._f.tell(), "size": 0, "hash": _SectionHash(self._chunk_bytes)}
        pad = _align(d["size"]) - d["size"]
        if pad:
            self._f.write(b"\0" * pad)
            d["hash"].update(b"\0" * pad)
        entry = {"dtype": dt, "shape": [int(s) for s in arr.shape], "section": d["name"],
                 "offset": _align(d["size"]), "nbytes": len(raw), **meta}
        self._f.write(raw)
        d["hash"].update(raw)
        d["size"] = _align(d["size"]) + len(raw)
        self.tensors[name] = entry
        return entry

    @staticmethod
    def _check_name(name: str) -> None:
        if not name or len(name.encode()) >= NAME_BYTES:
            raise ValueError(f"section name {name!r} must be 1..{NAME_BYTES - 1} bytes")

    # -- finish --------------------------------------------------------------------------
    def close(self) -> Path:
        if self._closed:
            return self.path
        try:
            self._finish_data()
            chunked = [s for s in self._sections if s.chunks]
            minor = 1 if chunked else 0
            man = dict(self.manifest)
            man.setdefault("format", f"lbpk {FORMAT_MAJOR}.{minor}")
            man["tensors"] = self.tensors
            text = json.dumps(man, separators=(",", ":"), sort_keys=False, allow_nan=False).encode()
            self._add_section("manifest", text, KIND_MANIFEST, 0)
            if chunked:
                table = _CHUNK_HEADER.pack(self._chunk_bytes, len(chunked), 0) + b"".join(
                    _CHUNK_ENTRY.pack(s.name.encode().ljust(NAME_BYTES, b"\0"), s.size, len(s.chunks), 0) for s in chunked)
                self._add_section(CHUNKS_SECTION, table + b"".join(d for s in chunked for d in s.chunks), KIND_CHUNKS, 0)
            self._pad_to_align()
            table_off = self._f.tell()
            table = b"".join(
                _ENTRY.pack(s.name.encode().ljust(NAME_BYTES, b"\0"), s.kind, 0, s.offset, s.size, s.sha256)
                for s in self._sections)
            self._f.write(table)
            size = self._f.tell()
            header = _HEADER.pack(MAGIC, FORMAT_MAJOR, minor, 0, size, table_off, len(self._sections),
                                  ENTRY_SIZE, hashlib.sha256(table).digest())
            self._f.seek(0)
            self._f.write(header.ljust(HEADER_SIZE, b"\0"))
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
            publish(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Drops the temporary file (nothing is left at ``path``)."""
        try:
            self._f.close()
        finally:
            self._tmp.unlink(missing_ok=True)
        self._closed = True

    def __enter__(self) -> "PackageWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class PackageReader:
    """Pure-Python reader (inspect, tests, tools): maps the file, checks the header and the
    section table, and (``verify=True``) every section's SHA-256."""

    def __init__(self, path: Union[str, Path], *, verify: bool = True):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < HEADER_SIZE:
                raise PackageError(f"{self.path}: {size} bytes is too short for a .lbpk header ({HEADER_SIZE} bytes)")
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        buf = self._mm
        magic, major, minor, flags, file_size, table_off, n, esize, table_sha = _HEADER.unpack_from(buf, 0)
        if magic != MAGIC:
            raise PackageError(f"{self.path}: not a lowbit package (bad magic {magic!r})")
        if major != FORMAT_MAJOR:
            raise PackageError(f"{self.path}: format version {major}.{minor}; this lowbit reads {FORMAT_MAJOR}.x")
        if flags != 0 or any(buf[_HEADER.size:HEADER_SIZE]):
            raise PackageError(f"{self.path}: header has unknown flags or non-zero reserved bytes")
        if file_size != size:
            raise PackageError(f"{self.path}: header says {file_size} bytes, file has {size} (truncated?)")
        if esize != ENTRY_SIZE or table_off < HEADER_SIZE or table_off + n * esize > size:
            raise PackageError(f"{self.path}: section table out of bounds")
        table = bytes(buf[table_off:table_off + n * esize])
        if hashlib.sha256(table).digest() != table_sha:
            raise PackageError(f"{self.path}: section table checksum mismatch")
        self.version = (major, minor)
        self.sections: Dict[str, Section] = {}
        for i in range(n):
            name, kind, sflags, off, ssize, sha = _ENTRY.unpack_from(table, i * esize)
            nm = name.rstrip(b"\0").decode()
            if off % ALIGN or off + ssize > table_off or off < HEADER_SIZE:
                raise PackageError(f"{self.path}: section {nm!r} out of bounds")
            self.sections[nm] = Section(nm, kind, off, ssize, sha)
        if "manifest" not in self.sections:
            raise PackageError(f"{self.path}: no manifest section")
        self.chunk_bytes = 0
        self._read_chunk_table()
        self.verify_section("manifest")
        try:
            self.manifest = json.loads(bytes(self.section_bytes("manifest")))
        except ValueError as exc:  # bad UTF-8 or JSON behind a valid hash (a writer bug, a hand edit)
            raise PackageError(f"{self.path}: the manifest is not valid JSON ({exc})") from None
        if not isinstance(self.manifest, dict):
            raise PackageError(f"{self.path}: the manifest is not a JSON object")
        if verify:
            for nm in self.sections:
                self.verify_section(nm)

    def _read_chunk_table(self) -> None:
        """Format 1.1: the chunk table (the section of kind 4), checked like the native reader."""
        tables = [s for s in self.sections.values() if s.kind == KIND_CHUNKS]
        if not tables:
            return
        if len(tables) > 1:
            raise PackageError(f"{self.path}: two chunk tables; a package has at most one")
        ct = tables[0]
        self.verify_section(ct.name)
        raw = bytes(self.section_bytes(ct.name))
        where = f"{self.path}: chunk table {ct.name!r}"
        if len(raw) < _CHUNK_HEADER.size:
            raise PackageError(f"{where} is {len(raw)} bytes, shorter than its {_CHUNK_HEADER.size}-byte header (truncated)")
        cs, count, res = _CHUNK_HEADER.unpack_from(raw, 0)
        if cs < 4096 or cs % 64 or cs > 1 << 30:
            raise PackageError(f"{where} has chunk size {cs}; it must be a multiple of 64 from 4096 to 2^30 bytes")
        if res:
            raise PackageError(f"{where}: header reserved field is not zero")
        if count > len(self.sections) or count * _CHUNK_ENTRY.size > len(raw) - _CHUNK_HEADER.size:
            raise PackageError(f"{where} lists {count} sections, but its {len(raw)} bytes hold at most "
                               f"{(len(raw) - _CHUNK_HEADER.size) // _CHUNK_ENTRY.size} entries (truncated or wrong count)")
        listed = []
        for i in range(count):
            name, size, nc, res = _CHUNK_ENTRY.unpack_from(raw, _CHUNK_HEADER.size + i * _CHUNK_ENTRY.size)
            nm = name.split(b"\0", 1)[0].decode(errors="replace")
            s = self.sections.get(nm)
            if s is None or b"\0" not in name:
                raise PackageError(f"{where}: entry {i} names section {nm!r}, which the section table lacks")
            if s.kind in (KIND_MANIFEST, KIND_CHUNKS) or s in listed:
                raise PackageError(f"{where}: entry {i}: section {nm!r} "
                                   + ("is listed twice" if s in listed else "cannot be chunked (hashed whole)"))
            if size != s.size:
                raise PackageError(f"{where} says section {nm!r} is {size} bytes; the section table says {s.size}")
            want = -(-size // cs)
            if nc != want or nc == 0:
                raise PackageError(f"{where} gives section {nm!r} {nc} chunks; {size} bytes in {cs}-byte chunks are {want}")
            if res:
                raise PackageError(f"{where}: entry {i} reserved field is not zero")
            listed.append(s)
        need = _CHUNK_HEADER.size + count * _CHUNK_ENTRY.size + 32 * sum(-(-s.size // cs) for s in listed)
        if len(raw) != need:
            raise PackageError(f"{where} is {len(raw)} bytes; its {count} entries take {need} "
                               f"({'truncated' if len(raw) < need else 'trailing bytes'})")
        pos = _CHUNK_HEADER.size + count * _CHUNK_ENTRY.size
        for s in listed:
            n = -(-s.size // cs)
            s.chunks = [raw[pos + 32 * c:pos + 32 * c + 32] for c in range(n)]
            pos += 32 * n
        self.chunk_bytes = cs

    def section_bytes(self, name: str) -> memoryview:
        s = self.sections[name]
        return memoryview(self._mm)[s.offset:s.offset + s.size]

    def verify_section(self, name: str) -> None:
        """Checks a section's SHA-256 and, if it is chunked (format 1.1), every chunk's: both, so
        that a package whose two sets of hashes disagree (which only a writer bug can make: format
        1.0 readers check the first, the native 1.1 reader the second) is refused here."""
        s, cs = self.sections[name], self.chunk_bytes
        with self.section_bytes(name) as data:  # released before an error (close() needs no view left)
            bad = [c for c, want in enumerate(s.chunks or ()) if hashlib.sha256(data[c * cs:(c + 1) * cs]).digest() != want]
            whole = hashlib.sha256(data).digest() == s.sha256
        if bad:
            lo, hi = bad[0] * cs, min(bad[0] * cs + cs, s.size)
            raise PackageError(f"{self.path}: section {name!r} checksum mismatch in chunk {bad[0]} of {len(s.chunks)} "
                               f"(bytes {lo}..{hi} of its {s.size}; corrupted)")
        if not whole:
            raise PackageError(f"{self.path}: section {name!r} checksum mismatch (corrupted)")

    def tensor(self, name: str) -> np.ndarray:
        """A read-only view of a stored tensor (no copy)."""
        e = self.manifest["tensors"][name]
        s = self.sections[e["section"]]
        dt = np.dtype(NP_DTYPES[e["dtype"]])
        return np.frombuffer(self._mm, dtype=dt, count=e["nbytes"] // dt.itemsize,
                             offset=s.offset + e["offset"]).reshape(e["shape"])

    def close(self) -> None:
        self._mm.close()
