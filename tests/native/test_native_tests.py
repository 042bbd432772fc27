"""The native test binary (dispatch + every kernel vs its reference) on every ISA path this
machine can run, forced through LOWBIT_ISA, and once more under ASan + UBSan."""
import pytest

from lowbit_testutil import run

X86_PATHS = ["scalar", "avx2", "avx512vnni"]


def _usable(nat):
    return set(nat.isa_usable())


@pytest.mark.parametrize("isa", ["auto"] + X86_PATHS)
def test_native_suite_per_isa(native_host, nat, isa):
    r = run([native_host / "lowbit-tests"], env={"LOWBIT_ISA": isa})
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 failed" in r.stdout
    if isa != "auto" and isa in _usable(nat):
        assert f"ISA path {isa}" in r.stdout, r.stdout


def test_forcing_unusable_isa_is_refused(native_host, nat):
    missing = [p for p in X86_PATHS if p not in _usable(nat)] or ["neon"]
    r = run([native_host / "lowbit-run", "--info"], env={"LOWBIT_ISA": missing[0]})
    # --info still answers; the refusal is reported by the runtime entry points and doctor.
    assert r.returncode == 0


# Its setup compiles the whole library with ASan + UBSan (several minutes on 2 cores, more on a
# loaded machine): a longer limit than the suite's 900 s, still far inside CI's hour.
@pytest.mark.timeout(2400)
def test_native_suite_sanitizers(native_asan):
    r = run([native_asan / "lowbit-tests"], env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1",
                                                 "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"})
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert " 0 failed" in r.stdout


def test_lowbit_run_selfcheck(native_host):
    r = run([native_host / "lowbit-run", "--selfcheck"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "self-check passed" in r.stdout
