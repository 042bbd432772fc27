"""A small CPU schedule for the TVM writer's PrimFuncs (TVM's Relax CPU pipeline schedules nothing).

Per block, after dlight's normalisation (one loop per block iterator, spatial then reduction):
* a reduction (matmul, conv, the fused decode-matmul): the reduction loops move outside the
  innermost spatial loop, which is vectorised ``lanes`` wide (the init is split off with
  ``decompose_reduction``); the outer spatial loops are fused and run in parallel;
* an injective block (elementwise, epilogues): outer loops fused and parallel, the innermost
  vectorised.
Each output element is still reduced in one fixed order, so results do not depend on threads.
``lanes`` and ``parallel`` are the TVM entry of a profile's ``[kernels.tiles]`` (``lowbit tune``
can search them). A block the rule cannot handle keeps TE's loop nest.
"""
from __future__ import annotations

from typing import Optional

DEFAULTS = {"lanes": 8, "parallel": 1, "min_parallel": 64, "schedule": 1}


def _extent(sch, loop):
    from tvm import tirx  # noqa: PLC0415

    ext = sch.get(loop).extent
    return int(ext.value) if isinstance(ext, tirx.IntImm) else None


def _lanes_for(extent: Optional[int], lanes: int) -> int:
    if not extent or extent < 2:
        return 0
    if extent <= 2 * lanes:
        return extent  # one (odd-sized) vector: LLVM widens 7 or 14 lanes to its registers
    for v in (lanes, lanes // 2, lanes // 4):
        if v >= 2 and extent % v == 0:
            return v
    return 0


def _vectorize_last(sch, loop, lanes):
    v = _lanes_for(_extent(sch, loop), lanes)
    if not v:
        return
    if _extent(sch, loop) == v:
        sch.vectorize(loop)
    else:
        _, inner = sch.split(loop, factors=[None, v])
        sch.vectorize(inner)


def _parallel_outer(sch, loops, cfg):
    if not cfg["parallel"] or not loops:
        return
    total = 1
    use = []
    for lp in loops:
        e = _extent(sch, lp)
        if e is None:
            break
        use.append(lp)
        total *= e
        if total >= cfg["min_parallel"]:
            break
    if total < 2 or not use:
        return
    fused = sch.fuse(*use) if len(use) > 1 else use[0]
    sch.parallel(fused)


def schedule_func(func, cfg=None):
    """A scheduled copy of ``func``, or None when the rule does not apply."""
    from tvm import s_tir  # noqa: PLC0415
    from tvm.s_tir.dlight.analysis import normalize_prim_func  # noqa: PLC0415

    cfg = {**DEFAULTS, **(cfg or {})}
    sch = s_tir.Schedule(func)
    infos = normalize_prim_func(sch)
    if not infos:
        return None
    for bi in infos:
        block = bi.block_rv
        writes = sch.get(block).writes
        if any(str((w.source if hasattr(w, "source") else w.buffer).dtype) == "bool" for w in writes):
            continue  # TVM's LLVM codegen cannot store bool vectors
        loops = sch.get_loops(block)
        kinds = bi.dom_kind()
        if len(loops) != len(kinds) or not kinds:
            continue
        spatial = [lp for lp, k in zip(loops, kinds) if k == "S"]
        reduce = [lp for lp, k in zip(loops, kinds) if k == "R"]
        if any(k not in "SR" for k in kinds):
            continue
        if reduce:
            if not spatial:
                continue
            # The vector axis is the innermost spatial loop (the output width for convolutions,
            # N for matmuls): the reduction moves outside it. Where no vector width fits it, the
            # function is left to dlight's CPU rules.
            inner = spatial[-1]
            if not _lanes_for(_extent(sch, inner), cfg["lanes"]):
                return None
            sch.reorder(*spatial[:-1], *reduce, inner)
            _parallel_outer(sch, spatial[:-1], cfg)  # a complete reduction block still: parallel first
            _vectorize_last(sch, inner, cfg["lanes"])  # while the block still has its init
            sch.decompose_reduction(block, reduce[0])
        else:
            _parallel_outer(sch, spatial[:-1], cfg)
            _vectorize_last(sch, sch.get_loops(block)[-1], cfg["lanes"])
    return sch.mod["main"]


def cpu_schedule_pass(cfg=None):
    """Module pass: schedule every PrimFunc not scheduled yet; keep a function the rule fails on."""
    import tvm  # noqa: PLC0415
    from tvm import tirx  # noqa: PLC0415

    @tvm.transform.module_pass(opt_level=0, name="LowbitCpuSchedule")
    def _pass(mod, _ctx):
        updates = {}
        for gv, func in mod.functions.items():
            if not isinstance(func, tirx.PrimFunc) or func.attrs and func.attrs.get("tirx.is_scheduled"):
                continue
            try:
                new = schedule_func(func, cfg)
            except Exception:  # noqa: BLE001 - a shape the rule cannot handle: keep TE's loop nest
                new = None
            if new is not None:
                updates[gv] = new.with_attr("tirx.is_scheduled", True)
        for gv, func in updates.items():
            mod[gv] = func
        return mod

    return _pass
