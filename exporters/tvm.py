"""The TVM writer: lowbit graph IR -> TVM Relax -> a compiled artifact for a target profile.

``write_tvm(graph, out, profile)`` writes a folder:

  manifest.json   what the artifact is: profile, TVM target and version, inputs/outputs, the fused
                  decode-matmul kernels, tolerance against lowbit's reference
  model.so        the Relax VM library for the profile's CPU (x86-64 natively, aarch64 cross-compiled
                  with the profile's toolchain); for GPU profiles the host code with the OpenCL
                  kernels embedded, loadable by a TVM runtime built with OpenCL
  kernels.cl      (GPU profiles) the OpenCL C that TVM generated
  plan.json       (GPU profiles) every kernel launch in order: kernel, buffers, global/local sizes
  consts.npz      (GPU profiles) the packed weights and other constants the plan refers to

x86 artifacts run here with :func:`load_tvm`; GPU artifacts run through ``tvm_opencl.OpenCLPlan``
(pyopencl, e.g. on PoCL). tvm is imported only inside this module's functions.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from lowbit import LowbitError
from lowbit.ir import Graph

MANIFEST_FORMAT = "lowbit-tvm"
MANIFEST_VERSION = 1
# Documented tolerance of the TVM artifact against lowbit's reference (refexec / the runtime):
# the same float math in another summation order, so a few float32 ulps scaled by K.
TOLERANCE = {"max_abs_err_rel_to_max": 1e-4, "note": "relative to max |reference| of each output"}


def _profile(profile):
    from lowbit import targets  # noqa: PLC0415

    return targets.load(profile if profile is not None else "auto")


def _schedule_pass(gpu: bool):
    """dlight rules per function, trying rule sets in order: a rule that cannot analyse a function
    (dlight asserts on some packed-int4 reads) gives way to the next set. On GPUs the last set is
    Fallback alone, which binds any loop nest to threads; on CPUs a function no set fits keeps the
    loop nest TE wrote."""
    import tvm  # noqa: PLC0415
    from tvm.s_tir import dlight as dl  # noqa: PLC0415

    if gpu:
        sets = [[dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(), dl.gpu.GeneralReduction(), dl.gpu.Fallback()],
                [dl.gpu.Reduction(), dl.gpu.GeneralReduction(), dl.gpu.Fallback()],
                [dl.gpu.Fallback()]]
    else:
        sets = [[dl.cpu.GEMV(), dl.cpu.Reduction()]]
    passes = [dl.ApplyDefaultSchedule(*rules) for rules in sets]

    @tvm.transform.module_pass(opt_level=0, name="LowbitSchedule")
    def _pass(mod, _ctx):
        from tvm import tirx  # noqa: PLC0415

        updates = {}
        for gv, func in mod.functions.items():
            if not isinstance(func, tirx.PrimFunc):
                continue
            last = None
            for apply in passes:
                try:
                    updates[gv] = apply(tvm.IRModule({gv: func}))[gv]
                    break
                except Exception as exc:  # noqa: BLE001 - try the next rule set
                    last = exc
            else:
                if gpu:
                    raise LowbitError(f"TVM writer: no GPU schedule fits {gv.name_hint}: {last}")
        for gv, func in updates.items():
            mod[gv] = func
        return mod

    return _pass


def legalize(mod, target, gpu: bool, tiles=None):
    """Relax -> fused TIR PrimFuncs (scheduled for GPUs), stopping before VM lowering."""
    import tvm  # noqa: PLC0415
    from tvm import relax  # noqa: PLC0415

    passes = [relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(),
              relax.transform.FoldConstant(), relax.transform.FuseOps(), relax.transform.FuseTIR(),
              relax.transform.DeadCodeElimination()]
    if not gpu and (tiles or {}).get("schedule", 1):
        from .tvm_schedule import cpu_schedule_pass  # noqa: PLC0415

        passes.append(cpu_schedule_pass(tiles))  # ours first: dlight's CPU rules only take the rest
    passes.append(_schedule_pass(gpu))
    with target:
        return tvm.transform.Sequential(passes)(mod)


def _finish_pipeline(target):
    """The VM lowering half of TVM's default pipeline (after our legalize())."""
    import tvm  # noqa: PLC0415
    from tvm import relax  # noqa: PLC0415

    @tvm.transform.module_pass(opt_level=0)
    def _pipeline(mod, _ctx):
        with target:
            seq = tvm.transform.Sequential([
                relax.transform.RewriteDataflowReshape(), relax.transform.ToNonDataflow(),
                relax.transform.RemovePurityChecking(), relax.transform.CallTIRRewrite(),
                relax.transform.StaticPlanBlockMemory(), relax.transform.LowerAllocTensor(),
                relax.transform.KillAfterLastUse(), relax.transform.LowerRuntimeBuiltin(),
                relax.transform.ComputePrimValue(), relax.transform.VMShapeLower(),
                relax.transform.AttachGlobalSymbol()])
            return seq(mod)

    return _pipeline


def tvm_target(profile):
    import tvm  # noqa: PLC0415

    t = profile.tvm_target()
    host = t.pop("host", None)
    return tvm.target.Target(t, host=host) if host else tvm.target.Target(t)


def compile_graph(graph: Graph, profile, input_shapes=None):
    """Lowers and compiles; returns (executable, legalized IRModule, quant kernel names, target)."""
    import tvm  # noqa: PLC0415
    from tvm import relax  # noqa: PLC0415

    from .tvm_lower import lower  # noqa: PLC0415

    target = tvm_target(profile)
    mod, qkernels = lower(graph, input_shapes)
    lmod = legalize(mod, target, gpu=profile.is_gpu, tiles=profile.tiles.get("tvm"))
    opt = int(profile.data["tvm"].get("opt_level", 3))
    with tvm.transform.PassContext(opt_level=opt):
        ex = relax.build(lmod, target=target, relax_pipeline=_finish_pipeline(target))
    return ex, lmod, qkernels, target


def _cross_compiler(profile):
    from tvm.support import cc  # noqa: PLC0415

    cxx = profile.toolchain["cxx"]
    if not shutil.which(cxx):
        raise LowbitError(f"cross compiler {cxx!r} for target {profile.name} not found "
                          "(apt-get install g++-aarch64-linux-gnu, or run `make system-deps`)")
    return cc.cross_compiler(cxx, options=list(profile.toolchain.get("cflags", [])))


def write_tvm(graph: Graph, out: Path, profile=None, *, input_shapes: Optional[Dict[str, Sequence[int]]] = None,
              progress: bool = False) -> Path:
    """Compiles ``graph`` for ``profile`` (a name, path, Profile, or None = this host) into folder ``out``."""
    import tvm  # noqa: PLC0415

    prof = _profile(profile)
    out = Path(out)
    if out.suffix == ".so":
        raise LowbitError(f"--format tvm writes a folder (library, manifest, kernels); give a folder name, not {out.name!r}")
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    t0 = time.perf_counter()
    try:
        ex, lmod, qkernels, target = compile_graph(graph, prof, input_shapes)
        lib = tmp / "model.so"
        native_here = prof.arch == _host_arch()
        if native_here and not prof.is_gpu:
            ex.export_library(str(lib))
        else:
            ex.export_library(str(lib), fcompile=_cross_compiler(prof))
        main = lmod["main"]
        sig_in = [{"name": p.name, "shape": [int(d) for d in p.ty.shape],
                   "dtype": str(p.ty.dtype)} for p in main.params]
        sig_out = _outputs(graph, main)
        manifest: Dict[str, Any] = {
            "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
            "model": graph.name, "profile": prof.name, "arch": prof.arch, "device": prof.device,
            "isa": prof.isa, "tvm_target": prof.tvm_target(), "tvm_version": tvm.__version__,
            "library": "model.so", "inputs": sig_in, "outputs": sig_out,
            "quant_kernels": sorted(set(qkernels)), "scheme": graph.metadata.get("scheme"),
            "tolerance": TOLERANCE, "opencl": None,
        }
        if prof.is_gpu:
            from .tvm_opencl import write_plan  # noqa: PLC0415

            manifest["opencl"] = write_plan(ex, lmod, tmp, sig_in, sig_out)
        manifest["compile_seconds"] = round(time.perf_counter() - t0, 2)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _host_arch() -> str:
    from lowbit.targets import host_info  # noqa: PLC0415

    return host_info()["arch"]


def _usable_isas() -> List[str]:
    """The lowbit ISA paths this CPU can execute (native CPU detection), or [] without the extension."""
    try:
        import lowbit  # noqa: PLC0415

        return list(lowbit.native().isa_usable())
    except Exception:  # noqa: BLE001  (no native build: nothing to check against)
        return []


def _outputs(graph: Graph, main) -> List[Dict[str, Any]]:
    from tvm import relax  # noqa: PLC0415

    ret = main.ret_ty
    infos = list(ret.fields) if isinstance(ret, relax.TupleType) else [ret]
    return [{"name": t.name, "shape": [int(d) for d in si.shape], "dtype": str(si.dtype)}
            for t, si in zip(graph.outputs, infos)]


def read_manifest(path: Path) -> Dict[str, Any]:
    path = Path(path)
    mf = path / "manifest.json"
    if not mf.is_file():
        raise LowbitError(f"{path} is not a lowbit TVM artifact (no manifest.json)")
    m = json.loads(mf.read_text())
    if m.get("format") != MANIFEST_FORMAT or int(m.get("version", 0)) > MANIFEST_VERSION:
        raise LowbitError(f"{mf}: unsupported TVM artifact format {m.get('format')!r} v{m.get('version')}")
    return m


class TvmModel:
    """A TVM artifact loaded for running on this machine (CPU, through the TVM runtime)."""

    def __init__(self, path: Path):
        import tvm  # noqa: PLC0415
        from tvm import relax  # noqa: PLC0415

        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        if self.manifest["device"] != "cpu" or self.manifest["arch"] != _host_arch():
            raise LowbitError(f"{self.path}: built for {self.manifest['profile']} ({self.manifest['arch']}/"
                              f"{self.manifest['device']}); it cannot run on this {_host_arch()} CPU "
                              "(GPU artifacts run through lowbit.exporters.tvm_opencl)")
        isa = self.manifest.get("isa")  # absent in artifacts written before session 10
        usable = _usable_isas()
        if isa and usable and isa not in usable:
            # Running it would die on an illegal instruction inside TVM's kernels: refuse instead.
            raise LowbitError(f"{self.path}: built for {self.manifest['profile']}, whose code needs the {isa} "
                              f"instructions; this CPU runs only {', '.join(usable)}. Export for a profile this CPU "
                              "supports (`lowbit targets detect` names it) or run the artifact on such a device")
        self._tvm = tvm
        lib = _fresh_copy(self.path / "model.so")
        self._vm = relax.VirtualMachine(tvm.runtime.load_module(lib), tvm.cpu())
        if lib != str((self.path / "model.so").resolve()):
            os.unlink(lib)  # the mapping stays valid
        self.inputs = self.manifest["inputs"]
        self.outputs = self.manifest["outputs"]

    def run(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        args = []
        for t in self.inputs:
            if t["name"] not in feeds:
                raise LowbitError(f"missing input {t['name']!r}")
            a = np.ascontiguousarray(feeds[t["name"]], dtype=t["dtype"])
            if list(a.shape) != t["shape"]:
                raise LowbitError(f"input {t['name']!r}: shape {list(a.shape)}, the artifact was compiled for {t['shape']}")
            args.append(self._tvm.runtime.tensor(a))
        res = self._vm["main"](*args)
        outs = [res] if len(self.outputs) == 1 else list(res)
        return {t["name"]: o.numpy() for t, o in zip(self.outputs, outs)}


_LOADED: Dict[str, tuple] = {}


def _fresh_copy(lib: Path) -> str:
    """dlopen() returns the first library loaded from a path for the life of the process, so an
    artifact rewritten in place would silently run the old code: load a rewritten one from a copy."""
    import tempfile  # noqa: PLC0415

    key = str(lib.resolve())
    st = lib.stat()
    stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    if _LOADED.get(key, stamp) == stamp:
        _LOADED[key] = stamp
        return key
    fd, tmp = tempfile.mkstemp(suffix=".so", prefix="lowbit-tvm-")
    os.close(fd)
    shutil.copyfile(lib, tmp)
    return tmp


def load_tvm(path) -> TvmModel:
    return TvmModel(Path(path))
