"""Every kernel in native/kernels/kernels.inc follows the naming grammar of docs/kernel-names.md,
its ISA suffix matches the dispatch level it is registered at, and the file it lives in exists."""
import re

from lowbit_testutil import ROOT

GRAMMAR = re.compile(
    r"^lb_(?:(?P<mm>gemv|gemm)_(?:f32|s32)_(?:q8d|q8|f32)_(?:q8c|q7c|q4g|c4g|t2g)|quant_q8d_f32)"
    r"(?:_(?P<tile>\d+x\d+|\d+))?__(?P<isa>ref|avx2|avx512vnni|neon|neon_dotprod|neon_i8mm)$")
LEVEL = {"LB_ISA_SCALAR": "ref", "LB_ISA_AVX2": "avx2", "LB_ISA_AVX512VNNI": "avx512vnni", "LB_ISA_NEON": "neon",
         "LB_ISA_DOTPROD": "neon_dotprod", "LB_ISA_I8MM": "neon_i8mm"}


def test_kernel_names_follow_the_grammar():
    text = (ROOT / "native/kernels/kernels.inc").read_text()
    entries = re.findall(r"^LB_KERNEL\((\w+), (\w+), (\w+)\)", text, re.M)
    assert len(entries) > 40
    sources = {p.read_text() for p in (ROOT / "native/kernels").glob("*/*.cpp")}
    for family, level, sym in entries:
        m = GRAMMAR.match(sym)
        assert m, f"{sym} does not follow lb_<op>_<out>_<act>_<weight>[_<tile>]__<isa>"
        assert m.group("isa") == LEVEL[level], f"{sym} registered at {level}"
        assert (m.group("tile") is None) == (m.group("isa") == "ref"), f"{sym}: SIMD kernels name their tile, refs do not"
        assert any(f"void {sym}(" in s for s in sources), f"{sym} is not defined in native/kernels/*/"
    families = re.findall(r"^LB_FAMILY\((\w+)\)", (ROOT / "native/kernels/families.inc").read_text(), re.M)
    assert {f for f, _, _ in entries} == set(families)
