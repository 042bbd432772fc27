"""Target profiles: every built-in validates, broken files name the key, user profiles and
`extends` work, detection picks the right profile, and `import lowbit.targets` stays light."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lowbit import LowbitError, targets
from lowbit.targets import ProfileError

BUILTINS = ["x86-64-avx2", "x86-64-avx512vnni", "arm64-cortex-a55", "arm64-cortex-a76",
            "arm64-neoverse-v1", "android-adreno", "android-mali"]


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    d = tmp_path / "targets"
    d.mkdir()
    monkeypatch.setenv("LOWBIT_TARGETS_PATH", str(d))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("LOWBIT_TARGET", raising=False)
    return d


def _write_broken(d, edit):
    """A copy of x86-64-avx2.toml with one text edit applied."""
    text = (targets.BUILTIN_DIR / "x86-64-avx2.toml").read_text()
    old, new = edit
    assert old in text, old
    p = d / "broken.toml"
    p.write_text(text.replace(old, new).replace('name = "x86-64-avx2"', 'name = "broken"'))
    return p


def test_every_builtin_profile_is_listed_and_validates():
    assert set(BUILTINS) <= set(targets.list_profiles())
    for name in BUILTINS:
        prof = targets.load(name)
        assert prof.name == name
        assert prof.path.name == f"{name}.toml"
        assert prof.default_scheme in prof.schemes
        assert prof.perf["source"] == "nominal"


def test_profile_facts_match_the_devices():
    assert targets.load("arm64-cortex-a55").isa == "dotprod"
    assert "dotprod" in targets.load("arm64-cortex-a55").features
    v1 = targets.load("arm64-neoverse-v1")
    assert {"i8mm", "sve"} <= set(v1.features) and v1.isa == "i8mm"
    assert targets.load("x86-64-avx512vnni").isa == "avx512vnni"
    for gpu, dev in (("android-adreno", "adreno"), ("android-mali", "mali")):
        p = targets.load(gpu)
        assert p.is_gpu and p.tvm_target()["kind"] == "opencl" and p.tvm_target()["device"] == dev
        assert p.tvm_target()["host"]["mtriple"].startswith("aarch64")
    for name in ("arm64-cortex-a55", "arm64-cortex-a76", "arm64-neoverse-v1"):
        tc = targets.load(name).toolchain_file
        assert tc is not None and tc.is_file(), name


def test_tvm_accepts_every_profile_target():
    tvm = pytest.importorskip("tvm")
    for name in BUILTINS:
        prof = targets.load(name)
        t = tvm.target.Target(prof.tvm_target())
        assert t.kind.name == prof.tvm_target()["kind"]
        if prof.arch == "aarch64" and not prof.is_gpu:
            assert str(t.attrs["mtriple"]).startswith("aarch64")


@pytest.mark.parametrize("edit,needle", [
    (('cores = 8\n', ''), "[cpu] cores: missing required key"),
    (('l3_kib = 16384\n', 'l3_kib = 16384\nl4_kib = 1\n'), "[cpu] l4_kib: unknown key"),
    (('mem_bandwidth_gbs = 25.0', 'mem_bandwidth_gbs = "fast"'), "[perf] mem_bandwidth_gbs: expected a number"),
    (('isa = "avx2"', 'isa = "avx3"'), "top level isa: expected one of"),
    (('isa = "avx2"', 'isa = "dotprod"'), "'dotprod' is an aarch64 path"),
    (('features = ["avx2", "fma", "f16c"]', 'features = ["avx2", "sse9"]'), "unknown x86_64 feature 'sse9'"),
    (('default_scheme = "w4a8-g32"', 'default_scheme = "w3a5"'), "unknown scheme 'w3a5'"),
    (('[detect]', '[detecct]'), "unknown section [detecct]"),
    (('[tvm]\n', '[tvm]\nmcpu = "x"\n'), "[tvm] mcpu: unknown key"),
    (('kind = "llvm"', 'kind = "opencl"'), "a cpu profile needs kind = \"llvm\""),
    (('schema = 1', 'schema = 9'), "version 9 is not supported"),
    (('priority = 10', 'priority = 10\n[[oops]]'), "oops: unknown key"),
    (('name = "x86-64-avx2"', 'name = "x86-64-avx2'), "not valid TOML"),
])
def test_broken_profile_names_the_key(user_dir, edit, needle):
    p = _write_broken(user_dir, edit)
    with pytest.raises(ProfileError) as exc:
        targets.load(str(p))
    assert needle in str(exc.value)
    assert str(p) in str(exc.value)
    assert isinstance(exc.value, LowbitError)  # the CLI prints it as a clean error


def test_unknown_target_lists_the_known_ones(user_dir):
    with pytest.raises(ProfileError, match="unknown target 'pixel-99'.*x86-64-avx2"):
        targets.load("pixel-99")
    with pytest.raises(ProfileError, match="does not exist"):
        targets.load(str(user_dir / "missing.toml"))


def test_user_profile_extends_a_builtin_and_is_listed(user_dir):
    (user_dir / "my-laptop.toml").write_text(
        'extends = "x86-64-avx2"\nname = "my-laptop"\ndescription = "mine"\n'
        '[cpu]\ncores = 4\n[kernels.tiles]\nq4_gemv = { rows = 8 }\n')
    assert "my-laptop" in targets.list_profiles()
    prof = targets.load("my-laptop")
    assert prof.cores == 4 and prof.data["cpu"]["l3_kib"] == 16384  # the rest inherited
    assert prof.tiles == {"q4_gemv": {"rows": 8}}
    assert prof.tvm_target() == targets.load("x86-64-avx2").tvm_target()
    # A user file named like a built-in may extend it (no loop), and wins the name lookup.
    (user_dir / "x86-64-avx2.toml").write_text('extends = "x86-64-avx2"\n[cpu]\ncores = 2\n')
    assert targets.load("x86-64-avx2").cores == 2
    (user_dir / "a.toml").write_text('extends = "b"\n')
    (user_dir / "b.toml").write_text('extends = "a"\n')
    with pytest.raises(ProfileError, match="loops"):
        targets.load("a")
    # A broken override is reported against the user's file.
    (user_dir / "bad-tiles.toml").write_text('extends = "x86-64-avx2"\nname = "bad-tiles"\n[kernels.tiles]\nq4_gemv = { rows = "8" }\n')
    with pytest.raises(ProfileError, match=r"bad-tiles.toml: \[kernels.tiles\] q4_gemv: expected a table of integers"):
        targets.load("bad-tiles")


def test_toml_round_trip(user_dir):
    for name in BUILTINS:
        prof = targets.load(name)
        p = user_dir / f"copy-{name}.toml"
        p.write_text(prof.to_toml().replace(f'name = "{name}"', f'name = "copy-{name}"'))
        again = targets.load(str(p))
        assert {**again.data, "name": name} == prof.data


@pytest.mark.parametrize("host,expected", [
    ({"arch": "x86_64", "features": ["avx2", "fma", "f16c"]}, "x86-64-avx2"),
    ({"arch": "x86_64", "features": ["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
                                     "avx512dq", "avx512vnni"]}, "x86-64-avx512vnni"),
    ({"arch": "aarch64", "features": ["asimd", "dotprod", "fp16"], "cpu_parts": ["0xd05"]}, "arm64-cortex-a55"),
    ({"arch": "aarch64", "features": ["asimd", "dotprod", "fp16"], "cpu_parts": ["0xd05", "0xd0b"]}, "arm64-cortex-a76"),
    ({"arch": "aarch64", "features": ["asimd", "dotprod", "fp16"], "cpu_parts": []}, "arm64-cortex-a76"),
    ({"arch": "aarch64", "features": ["asimd", "dotprod", "i8mm", "sve", "fp16", "bf16"], "cpu_parts": ["0xd40"]}, "arm64-neoverse-v1"),
])
def test_detect_picks_the_profile_for_a_host(user_dir, host, expected):
    assert targets.detect(host).name == expected


def test_detect_refuses_a_host_no_profile_fits(user_dir):
    with pytest.raises(ProfileError, match="no target profile fits"):
        targets.detect({"arch": "x86_64", "features": ["fma"]})


def test_detect_on_this_machine_and_measured_overlay(user_dir, monkeypatch):
    prof = targets.detect()
    host = targets.host_info()
    assert prof.arch == host["arch"] and set(prof.features) <= set(host["features"])
    assert prof.is_native_here()
    targets.save_measured({"mem_bandwidth_gbs": 27.5, "int8_peak_gops": 111.0})
    measured = targets.detect()
    assert measured.perf["mem_bandwidth_gbs"] == 27.5 and measured.perf["source"] == "measured"
    assert targets.load(prof.name).perf["source"] == "nominal"  # load() gives the file as written
    with pytest.raises(ProfileError, match="unknown \\[perf\\] keys"):
        targets.save_measured({"bandwidth": 1.0})
    monkeypatch.setenv("LOWBIT_TARGET", "arm64-cortex-a55")
    assert targets.detect().name == "arm64-cortex-a55"
    assert targets.load("auto").name == "arm64-cortex-a55"


def test_import_is_light():
    code = ("import sys, lowbit.targets as t; t.load('x86-64-avx2'); t.list_profiles();"
            "print(json.dumps(sorted(m for m in ('tvm', 'numpy', 'torch', 'lowbit._native') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", "import json;" + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_cli_targets(user_dir, capsys):
    from lowbit.cli import main

    assert main(["targets", "list"]) == 0
    out = capsys.readouterr().out
    for name in BUILTINS:
        assert name in out
    assert main(["targets", "show", "android-mali", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["tvm"]["target"]["device"] == "mali"
    assert main(["targets", "detect", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == targets.detect().name
    bad = _write_broken(user_dir, ('cores = 8\n', ''))
    assert main(["targets", "check", "x86-64-avx2", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "ok    x86-64-avx2" in out and "[cpu] cores: missing required key" in out
    assert main(["targets", "show", "nope"]) == 1
    assert "unknown target 'nope'" in capsys.readouterr().err


def test_detect_uses_the_profilers_device_measurement(user_dir, monkeypatch):
    device = pytest.importorskip("lowbit.profiler.device")
    rec = {"measured": {"read_gbps": {"1": 20.0, "2": 31.5}, "int8_gops": {"1": 400.0, "2": 790.0}}}
    monkeypatch.setattr(device, "load_cached", lambda device_id=None: rec)
    prof = targets.detect()
    assert prof.perf["source"] == "measured"
    assert prof.perf["mem_bandwidth_gbs"] == 31.5 and prof.perf["int8_peak_gops"] == 790.0
