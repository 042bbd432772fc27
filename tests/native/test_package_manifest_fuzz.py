"""Manifests that pass every checksum but are damaged (a writer bug, a hand-edited or hostile
package): every node of a small graph's manifest deleted or replaced by a wrong-typed / negative
/ huge value, and each op's inputs dropped, emptied, swapped or extended. Each load + run must
either work or fail with a lowbit status and a message; never crash (the byte-flip test cannot
reach these: the hashes catch flipped bytes first). Runs in a child process so that a crash is
reported with the mutation that caused it."""
import sys

from lowbit_testutil import ROOT, run

CHILD = r'''
import copy, sys
import numpy as np
sys.path.insert(0, sys.argv[2])
import lowbit
from lowbit.exporters.lbpk import write_package
from lowbit.exporters.lbpk_container import PackageReader
from lowbit.ir import Graph, Node, TensorInfo
from lowbit.runtime import RuntimeStatusError
from lowbit_testutil import rewrite_manifest

rng = np.random.default_rng(3)
g = Graph("fuzz", [Node("Conv", "conv", ["x", "w", "b"], ["c"], {"pads": [1, 1, 1, 1], "strides": [1, 1]}),
                   Node("Relu", "relu", ["c"], ["r"]),
                   Node("Add", "add", ["r", "bias2"], ["a"]),
                   Node("GlobalAveragePool", "gap", ["a"], ["p"]),
                   Node("Flatten", "flat", ["p"], ["f"], {"axis": 1}),
                   Node("MatMul", "mm", ["f", "wm"], ["y"])],
          [TensorInfo("x", "float32", (1, 2, 5, 5))], [TensorInfo("y", "float32", (1, 4))],
          {"w": rng.standard_normal((3, 2, 3, 3)).astype(np.float32), "b": rng.standard_normal(3).astype(np.float32),
           "bias2": rng.standard_normal((1, 3, 1, 1)).astype(np.float32),
           "wm": rng.standard_normal((3, 4)).astype(np.float32)})
pkg = sys.argv[1] + "/fuzz.lbpk"
write_package(g, pkg, target="x86-64-avx2", scheme="fp32")
raw = open(pkg, "rb").read()
man = PackageReader(pkg).manifest
feeds = {"x": rng.standard_normal((1, 2, 5, 5)).astype(np.float32)}
BAD = [None, -1, 0, 2 ** 40, -2 ** 62, 1.5, "zz", "", [], {}, True, [-1], [2 ** 31]]

def paths(node, prefix=()):
    yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield from paths(v, prefix + (k,))

def at(m, p):
    for k in p:
        m = m[k]
    return m

def mutations():
    for p in paths(man):
        if not p or (p[0] == "tensors" and len(p) > 3) or (p[0] == "producer"):
            continue
        if isinstance(at(man, p[:-1]), dict):
            m = copy.deepcopy(man); del at(m, p[:-1])[p[-1]]
            yield f"del {p}", m
        for v in BAD:
            if at(man, p) != v:
                m = copy.deepcopy(man); at(m, p[:-1])[p[-1]] = copy.deepcopy(v)
                yield f"{p} = {v!r}", m
    for oi, op in enumerate(man["ops"]):
        n = len(op["inputs"])
        for j in range(n + 1):
            for desc, new in ((f"inputs[:{j}]", op["inputs"][:j]),
                              (f"inputs[{j}] = ''", op["inputs"][:j] + [""] + op["inputs"][j + 1:]),
                              (f"inputs[{j}] = x", op["inputs"][:j] + ["x"] + op["inputs"][j + 1:]),
                              (f"inputs[{j}] = w", op["inputs"][:j] + ["w"] + op["inputs"][j + 1:])):
                m = copy.deepcopy(man); m["ops"][oi]["inputs"] = new
                yield f"op {op['name']} {desc}", m
        m = copy.deepcopy(man); m["ops"][oi]["outputs"].append(op["name"] + "_extra")
        yield f"op {op['name']} extra output", m

counts = {}
for i, (desc, m) in enumerate(mutations()):
    print("TRY", i, desc, flush=True)
    try:
        s = lowbit.load(rewrite_manifest(raw, m))
        s.run(feeds)
        r = "ok"
    except RuntimeStatusError as e:
        r = e.status
        if not e.detail or len(str(e)) < 25:
            print("VAGUE", desc, repr(str(e)), flush=True)
    counts[r] = counts.get(r, 0) + 1
print("COUNTS", counts, flush=True)
'''


def test_damaged_manifests_fail_cleanly_never_crash(tmp_path, nat):
    r = run([sys.executable, "-c", CHILD, str(tmp_path), str(ROOT / "tests")], timeout=300)
    last = [ln for ln in r.stdout.splitlines() if ln.startswith("TRY")][-1:]
    assert r.returncode == 0, f"crashed (rc {r.returncode}) at {last}:\n{r.stderr[-3000:]}"
    assert "VAGUE" not in r.stdout, [ln for ln in r.stdout.splitlines() if ln.startswith("VAGUE")]
    counts = eval(r.stdout.split("COUNTS", 1)[1])  # noqa: S307 (our own child's dict)
    # most damage is refused: a format error or the status of what became wrong (shape, op, name)
    assert counts.get("LB_ERR_FORMAT", 0) > 200, counts
    assert set(counts) <= {"ok", "LB_ERR_FORMAT", "LB_ERR_SHAPE", "LB_ERR_DTYPE", "LB_ERR_UNSUPPORTED",
                           "LB_ERR_NOT_FOUND", "LB_ERR_OUT_OF_MEMORY", "LB_ERR_INVALID_ARG", "LB_ERR_VERSION"}, counts


KERNELS_CHILD = r'''
import sys
import numpy as np
import lowbit
import lowbit._native as nat
from lowbit.exporters.lbpk_container import PackageWriter
from lowbit.runtime import RuntimeStatusError

counts = {}
for k in nat.runtime_kernels():
    for n in (1, 2, 3, 4):
        variants = [["x"] * n] + [["x"] + ["c"] * (n - 1) for _ in range(1)]
        variants += [["x"] + ["c" if j != omit else "" for j in range(1, n)] for omit in range(1, n)]
        for ins in variants:
            print("TRY", k, ins, flush=True)
            p = sys.argv[1] + "/k.lbpk"
            with PackageWriter(p) as w:
                w.add_tensor("c", np.ones((1, 2, 4, 4), np.float32))
                w.manifest.update({"kind": "graph", "inputs": [{"name": "x", "dtype": "f32", "shape": [1, 2, 4, 4]}],
                                   "outputs": [{"name": "y", "dtype": "f32", "shape": [1, 2, 4, 4]}],
                                   "ops": [{"name": "op", "op": "Probe", "kernel": k, "inputs": ins, "outputs": ["y"],
                                            "attrs": {}}]})
            try:
                lowbit.load(p).run({"x": np.ones((1, 2, 4, 4), np.float32)})
                r = "ok"
            except RuntimeStatusError as e:
                r = e.status
            counts[r] = counts.get(r, 0) + 1
print("COUNTS", counts, flush=True)
'''


def test_every_kernel_with_missing_or_repeated_inputs_fails_cleanly(tmp_path, nat):
    """One op of each kernel of this build, with 1-4 inputs, some omitted (""): a required input
    left out must be refused by the op's shape inference, never dereferenced."""
    r = run([sys.executable, "-c", KERNELS_CHILD, str(tmp_path)], timeout=300)
    last = [ln for ln in r.stdout.splitlines() if ln.startswith("TRY")][-1:]
    assert r.returncode == 0, f"crashed (rc {r.returncode}) at {last}:\n{r.stderr[-3000:]}"
    counts = eval(r.stdout.split("COUNTS", 1)[1])  # noqa: S307 (our own child's dict)
    assert sum(counts.values()) >= 10 * len(nat.runtime_kernels()), counts
