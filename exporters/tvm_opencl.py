"""OpenCL side of the TVM writer: the kernels TVM generated for a GPU profile, a launch plan that
says how to run them, and a small pyopencl executor for that plan (PoCL on a CPU here; any
OpenCL 1.2 device in principle).

The plan is read off the legalised Relax module: ``main`` is a sequence of ``call_tir`` on fused,
dlight-scheduled PrimFuncs; each PrimFunc's thread-bound loop nests are its kernels, with their
``blockIdx``/``threadIdx`` extents as work-group counts and sizes. Kernel arguments are matched to
the PrimFunc's buffers by name (TVM names them ``<buffer>_ptr``).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from lowbit import LowbitError

_KERNEL_RE = re.compile(r"__kernel\s+void\s+(\w+)\s*\(([^)]*)\)\s*\{")


def _opencl_source(ex) -> str:
    mods = []

    def walk(m):
        if m.kind == "opencl":
            mods.append(m)
        for i in m.imports:
            walk(i)

    walk(ex.mod)
    if not mods:
        raise LowbitError("TVM produced no OpenCL module for this GPU target")
    return "\n".join(m.inspect_source() for m in mods)


def _kernel_signatures(src: str) -> Dict[str, List[str]]:
    """kernel name -> parameter names (definitions only, in source order)."""
    sigs: Dict[str, List[str]] = {}
    for name, params in _KERNEL_RE.findall(src):
        names = []
        for p in params.split(","):
            toks = re.findall(r"\w+", p)
            if not toks:
                continue
            if "__global" not in p:
                raise LowbitError(f"OpenCL kernel {name} takes a scalar argument {p.strip()!r} "
                                  "(dynamic shapes are not supported by the plan)")
            names.append(toks[-1])
        sigs[name] = names
    return sigs


def _launches(func) -> List[Dict[str, List[int]]]:
    """Per kernel (top-level thread-bound loop nest, in order): global and local work sizes."""
    from tvm import tirx  # noqa: PLC0415

    kernels: List[Dict[str, int]] = []

    def children(stmt):
        for attr in ("seq", "body", "block", "then_case", "else_case"):
            child = getattr(stmt, attr, None)
            if child is None:
                continue
            if attr == "seq":
                yield from child
            else:
                yield child

    def is_bound(stmt):
        return isinstance(stmt, tirx.For) and stmt.kind == tirx.ForKind.THREAD_BINDING

    def collect(stmt, ext):
        if is_bound(stmt):
            tag = stmt.thread_binding.thread_tag
            ext[tag] = max(ext.get(tag, 1), int(stmt.extent))
        for c in children(stmt):
            collect(c, ext)

    def walk(stmt):
        if is_bound(stmt):
            ext: Dict[str, int] = {}
            collect(stmt, ext)
            kernels.append(ext)
            return
        for c in children(stmt):
            walk(c)

    walk(func.body)
    out = []
    for ext in kernels:
        local = [ext.get(f"threadIdx.{a}", 1) for a in "xyz"]
        groups = [ext.get(f"blockIdx.{a}", 1) for a in "xyz"]
        out.append({"global": [g * l for g, l in zip(groups, local)], "local": local})
    return out


def _global_allocs(func) -> Dict[str, Dict[str, Any]]:
    """Buffers a PrimFunc allocates in global memory (passed between its kernels): name -> shape/dtype."""
    found: Dict[str, Dict[str, Any]] = {}

    def walk(stmt):
        for buf in getattr(stmt, "alloc_buffers", None) or []:
            if str(buf.scope()) in ("global", ""):
                found[buf.name] = {"shape": [int(d) for d in buf.shape], "dtype": str(buf.dtype)}
        for attr in ("seq", "body", "block", "then_case", "else_case"):
            child = getattr(stmt, attr, None)
            if child is None:
                continue
            for c in (child if attr == "seq" else [child]):
                walk(c)

    walk(func.body)
    return found


def _kernel_order(names: List[str], func_name: str) -> List[str]:
    mine = [n for n in names if n == f"{func_name}_kernel" or re.fullmatch(rf"{re.escape(func_name)}_kernel_?\d+", n)]

    def key(n):
        m = re.search(r"_kernel_?(\d*)$", n)
        return int(m.group(1)) if m and m.group(1) else 0

    return sorted(mine, key=key)


def relax_calls(lmod, sig_in, sig_out) -> Dict[str, Any]:
    """The legalised module's ``main`` as data: buffers (inputs ``in:NAME``, constants ``cN``,
    values ``vN``, per-call scratch ``sN``), constants, and the ``call_tir`` sequence with each
    PrimFunc's buffer arguments in parameter order (inputs, then outputs)."""
    import tvm  # noqa: PLC0415
    from tvm import relax  # noqa: PLC0415

    Constant = tvm.ir.expr.Constant
    main = lmod["main"]
    buffers: Dict[str, Dict[str, Any]] = {}
    consts: Dict[str, np.ndarray] = {}
    env: Dict[Any, Any] = {}
    for p, t in zip(main.params, sig_in):
        env[p] = f"in:{t['name']}"
        buffers[env[p]] = {"shape": t["shape"], "dtype": t["dtype"]}

    def ref(e):
        if isinstance(e, Constant):
            key = f"c{len(consts)}"
            consts[key] = e.value.numpy()
            buffers[key] = {"shape": list(consts[key].shape), "dtype": str(consts[key].dtype), "const": True}
            return key
        if e in env:
            return env[e]
        raise LowbitError(f"TVM plan: cannot resolve argument {e}")

    calls = []
    body = main.body
    for block in body.blocks:
        for b in block.bindings:
            v = b.value
            if isinstance(v, relax.Call) and str(v.op.name) == "relax.call_tir":
                gv, args = v.args[0], v.args[1]
                ins = [ref(a) for a in args.fields]
                out_ty = v.ty_args[0]
                out_tys = list(out_ty.fields) if isinstance(out_ty, relax.TupleType) else [out_ty]
                outs = []
                for t in out_tys:
                    key = f"v{len(buffers)}"
                    buffers[key] = {"shape": [int(d) for d in t.shape], "dtype": str(t.dtype)}
                    outs.append(key)
                env[b.var] = outs if isinstance(out_ty, relax.TupleType) else outs[0]
                calls.append({"func": gv.name_hint, "args": ins + outs})
            elif isinstance(v, relax.TupleGetItem):
                env[b.var] = env[v.tuple_value][v.index]
            elif isinstance(v, relax.Var):
                env[b.var] = env[v]
            elif isinstance(v, Constant):
                env[b.var] = ref(v)
            elif isinstance(v, relax.Tuple):
                env[b.var] = [ref(f) for f in v.fields]
            else:
                raise LowbitError(f"TVM plan: unsupported binding {type(v).__name__} in main")
    ret = body.body
    rets = [ref(f) for f in ret.fields] if isinstance(ret, relax.Tuple) else [ref(ret)]
    rets = [r for rr in rets for r in (rr if isinstance(rr, list) else [rr])]
    return {"inputs": sig_in, "outputs": [{**t, "buffer": r} for t, r in zip(sig_out, rets)],
            "buffers": buffers, "calls": calls, "consts": consts}


def build_plan(ex, lmod, sig_in, sig_out) -> Dict[str, Any]:
    """The launch plan, the OpenCL source and the constants of a GPU-compiled module."""
    src = _opencl_source(ex)
    sigs = _kernel_signatures(src)
    rc = relax_calls(lmod, sig_in, sig_out)
    buffers = rc["buffers"]
    calls = []
    for call in rc["calls"]:
        fname = call["func"]
        func = lmod[lmod.get_global_var(fname)]
        names = [p.name for p in func.params]
        bufs = call["args"]
        if len(names) != len(bufs):
            raise LowbitError(f"TVM plan: {fname} takes {len(names)} buffers, the call passes {len(bufs)}")
        by_name = dict(zip(names, bufs))
        for an, info in _global_allocs(func).items():
            key = f"s{len(buffers)}"
            buffers[key] = {**info, "scratch": True}
            by_name.setdefault(an, key)
        knames = _kernel_order(list(sigs), fname)
        geo = _launches(func)
        if len(knames) != len(geo):
            raise LowbitError(f"TVM plan: {fname} has {len(geo)} thread-bound loop nests but "
                              f"{len(knames)} OpenCL kernels")
        launches = []
        for kn, g in zip(knames, geo):
            kargs = []
            for pn in sigs[kn]:
                base = pn[:-4] if pn.endswith("_ptr") else pn
                if base not in by_name:
                    raise LowbitError(f"TVM plan: kernel {kn} argument {pn} matches no buffer of {fname} ({names})")
                kargs.append(by_name[base])
            launches.append({"kernel": kn, "args": kargs, **g})
        calls.append({"func": fname, "launches": launches})
    plan = {"inputs": rc["inputs"], "outputs": rc["outputs"], "buffers": buffers, "calls": calls}
    return {"plan": plan, "source": src, "consts": rc["consts"]}


def write_plan(ex, lmod, folder: Path, sig_in, sig_out) -> Dict[str, Any]:
    res = build_plan(ex, lmod, sig_in, sig_out)
    (folder / "kernels.cl").write_text(res["source"])
    (folder / "plan.json").write_text(json.dumps(res["plan"], indent=1))
    np.savez(folder / "consts.npz", **res["consts"])
    n_kernels = sum(len(c["launches"]) for c in res["plan"]["calls"])
    return {"source": "kernels.cl", "plan": "plan.json", "consts": "consts.npz", "kernels": n_kernels}


class OpenCLPlan:
    """Runs a GPU TVM artifact's kernels with pyopencl on an OpenCL device (default: the first one)."""

    def __init__(self, path, device=None):
        import pyopencl as cl  # noqa: PLC0415

        self.path = Path(path)
        self.plan = json.loads((self.path / "plan.json").read_text())
        self.source = (self.path / "kernels.cl").read_text()
        with np.load(self.path / "consts.npz") as z:
            self.consts = {k: z[k] for k in z.files}
        self.cl = cl
        if device is None:
            device = cl.get_platforms()[0].get_devices()[0]
        self.device = device
        self.ctx = cl.Context([device])
        self.queue = cl.CommandQueue(self.ctx)
        self.program = cl.Program(self.ctx, self.source).build()
        mf = cl.mem_flags
        self._const_bufs = {k: cl.Buffer(self.ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=np.ascontiguousarray(v))
                            for k, v in self.consts.items()}
        self._kernels = {}

    def run(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        cl = self.cl
        mf = cl.mem_flags
        bufs = dict(self._const_bufs)
        for t in self.plan["inputs"]:
            a = np.ascontiguousarray(feeds[t["name"]], dtype=t["dtype"])
            if list(a.shape) != t["shape"]:
                raise LowbitError(f"input {t['name']!r}: shape {list(a.shape)}, compiled for {t['shape']}")
            bufs[f"in:{t['name']}"] = cl.Buffer(self.ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=a)
        for key, info in self.plan["buffers"].items():
            if key not in bufs:
                nbytes = max(1, int(np.prod(info["shape"])) * np.dtype(info["dtype"]).itemsize)
                bufs[key] = cl.Buffer(self.ctx, mf.READ_WRITE, nbytes)
        for call in self.plan["calls"]:
            for ln in call["launches"]:
                k = self._kernels.get(ln["kernel"])
                if k is None:
                    k = self._kernels[ln["kernel"]] = cl.Kernel(self.program, ln["kernel"])
                k.set_args(*[bufs[a] for a in ln["args"]])
                cl.enqueue_nd_range_kernel(self.queue, k, tuple(ln["global"]), tuple(ln["local"]))
        out = {}
        for t in self.plan["outputs"]:
            info = self.plan["buffers"][t["buffer"]]
            host = np.empty(info["shape"], info["dtype"])
            cl.enqueue_copy(self.queue, host, bufs[t["buffer"]])
            out[t["name"]] = host
        self.queue.finish()
        return out
