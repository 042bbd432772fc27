"""The aarch64 cross build (Debian's g++-aarch64-linux-gnu), run under qemu-aarch64: every ARM
ISA path forced in turn with `-cpu max`, and a CPU without dotprod that must refuse it."""
import pytest

from lowbit_testutil import run

pytestmark = pytest.mark.qemu

QEMU = ["qemu-aarch64", "-cpu", "max"]


@pytest.mark.parametrize("isa", ["auto", "scalar", "neon", "dotprod", "i8mm"])
def test_arm_suite_per_isa(native_aarch64, isa):
    r = run(QEMU + [native_aarch64 / "lowbit-tests"], env={"LOWBIT_ISA": isa})
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert " 0 failed" in r.stdout
    if isa != "auto":
        assert f"ISA path {isa}" in r.stdout


def test_arm_max_cpu_reports_all_features(native_aarch64):
    r = run(QEMU + [native_aarch64 / "lowbit-run", "--info"])
    assert r.returncode == 0, r.stderr
    for feat in ("asimd", "dotprod", "i8mm", "sve"):
        assert f'"{feat}"' in r.stdout, r.stdout
    assert '"isa_best": "i8mm"' in r.stdout


def test_arm_selfcheck_runs_every_path(native_aarch64):
    r = run(QEMU + [native_aarch64 / "lowbit-run", "--selfcheck"])
    assert r.returncode == 0, r.stdout + r.stderr
    for path in ("scalar", "neon", "dotprod", "i8mm"):
        assert path in r.stdout


def test_arm_old_cpu_falls_back(native_aarch64):
    # Cortex-A53 has no dotprod: best path is plain NEON; forcing dotprod is refused by the tests' env check.
    r = run(["qemu-aarch64", "-cpu", "cortex-a53", native_aarch64 / "lowbit-run", "--info"])
    assert r.returncode == 0, r.stderr
    assert '"isa_best": "neon"' in r.stdout
    r = run(["qemu-aarch64", "-cpu", "cortex-a53", native_aarch64 / "lowbit-tests"], env={"LOWBIT_ISA": "dotprod"})
    assert r.returncode == 0, r.stdout[-3000:]
    assert " 0 failed" in r.stdout
