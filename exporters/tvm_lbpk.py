"""The TVM artifact as an alternate backend inside a ``.lbpk``.

``embed_tvm(pkg, tvm_folder)`` rewrites the package with one more blob section, ``tvm``: an
uncompressed tar of the artifact folder (manifest, library, kernels), covered by the package's
SHA-256 like every section. The manifest records it under ``artifacts``:

    "artifacts": {"tvm": "<pkg stem>.tvm", "tvm_section": "tvm",
                  "tvm_profile": "...", "tvm_target": {...}}

``artifacts.tvm`` is where ``extract_tvm`` unpacks it by default (next to the package), which is
where ``lowbit profile --compare tvm`` looks. The native runtime ignores sections it does not know.
"""
from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Optional

from lowbit import LowbitError

SECTION = "tvm"


def _tar(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                info = tf.gettarinfo(str(p), arcname=str(p.relative_to(folder)))
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0  # reproducible bytes
                with open(p, "rb") as f:
                    tf.addfile(info, f)
    return buf.getvalue()


def embed_tvm(pkg: Path, tvm_folder: Path, out: Optional[Path] = None) -> Path:
    """Writes ``out`` (default: ``pkg`` in place, atomically) = ``pkg`` + the TVM artifact section."""
    from lowbit.exporters.lbpk_container import KIND_BLOB, KIND_MANIFEST, KIND_TENSORS, PackageReader, PackageWriter  # noqa: PLC0415

    from .tvm import read_manifest  # noqa: PLC0415

    pkg, tvm_folder = Path(pkg), Path(tvm_folder)
    tvm_man = read_manifest(tvm_folder)
    out = Path(out) if out is not None else pkg
    r = PackageReader(pkg, verify=True)
    try:
        with PackageWriter(out) as w:
            man = {k: v for k, v in r.manifest.items() if k not in ("tensors", "format")}
            for name, e in r.manifest.get("tensors", {}).items():
                meta = {k: v for k, v in e.items() if k not in ("dtype", "shape", "section", "offset", "nbytes")}
                w.add_tensor(name, r.tensor(name), **meta)
            for name, sec in r.sections.items():
                if sec.kind not in (KIND_MANIFEST, KIND_TENSORS) and name != SECTION:
                    w.add_blob(name, bytes(r.section_bytes(name)), sec.kind)
            w.add_blob(SECTION, _tar(tvm_folder), KIND_BLOB)
            arts = dict(man.get("artifacts") or {})
            arts.update({"tvm": f"{out.stem}.tvm", "tvm_section": SECTION, "tvm_profile": tvm_man["profile"],
                         "tvm_target": tvm_man["tvm_target"]})
            man["artifacts"] = arts
            w.manifest.update(man)
    finally:
        r.close()
    return out


def extract_tvm(pkg: Path, dest: Optional[Path] = None) -> Path:
    """Unpacks the package's TVM artifact (default: next to it, as ``artifacts.tvm`` names it)."""
    from lowbit.exporters.lbpk_container import PackageReader  # noqa: PLC0415

    pkg = Path(pkg)
    r = PackageReader(pkg, verify=False)
    try:
        arts = r.manifest.get("artifacts") or {}
        sec = arts.get("tvm_section")
        if not sec or sec not in r.sections:
            raise LowbitError(f"{pkg} carries no TVM artifact (export one with --format tvm and embed it)")
        r.verify_section(sec)
        data = bytes(r.section_bytes(sec))
    finally:
        r.close()
    dest = Path(dest) if dest is not None else pkg.parent / arts.get("tvm", f"{pkg.stem}.tvm")
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tf:
        for m in tf.getmembers():
            if not m.isfile() or m.name.startswith("/") or ".." in Path(m.name).parts:
                raise LowbitError(f"{pkg}: TVM section has an unsafe entry {m.name!r}")
        tf.extractall(tmp, filter="data") if hasattr(tarfile, "data_filter") else tf.extractall(tmp)
    json.loads((tmp / "manifest.json").read_text())
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return dest
