"""One .lbpk, two machines: a package exported here runs with the aarch64 `lowbit-run` under
qemu-aarch64 and gives the x86 outputs — bitwise for the integer (quantized) paths, within float
rounding for fp32 (the float kernels may sum in a different order per ISA)."""
import numpy as np
import pytest

from lowbit_testutil import run

pytestmark = pytest.mark.qemu
torch = pytest.importorskip("torch")


class ConvNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, x):
        y = torch.nn.functional.relu6(self.dw(torch.relu(self.conv(x))))
        return self.fc(y.mean(dim=(2, 3)))


class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(64, 96)
        self.b = torch.nn.Linear(96, 32)

    def forward(self, x):
        return self.b(torch.nn.functional.gelu(self.a(x)))


def _export(tmp_path, model, x, scheme):
    import lowbit

    torch.manual_seed(0)
    calib = [(torch.from_numpy(x[i:i + 1]),) for i in range(len(x))]
    return lowbit.export(model.eval(), tmp_path / f"{scheme}.lbpk", example_inputs=(torch.from_numpy(x[:1]),),
                         scheme=scheme, calib=calib)


def _run_both(native_host, native_aarch64, pkg, tmp_path, x):
    np.save(tmp_path / "x.npy", x)
    outs = {}
    for name, cmd in (("x86", [native_host / "lowbit-run"]),
                      ("arm", ["qemu-aarch64", "-cpu", "max", native_aarch64 / "lowbit-run"])):
        d = tmp_path / name
        d.mkdir()
        from lowbit.exporters.lbpk_container import PackageReader

        in_name = PackageReader(pkg).manifest["inputs"][0]["name"]
        r = run(cmd + ["run", pkg, "--input", f"{in_name}={tmp_path / 'x.npy'}", "--output", d])
        assert r.returncode == 0, r.stdout + r.stderr
        outs[name] = {p.stem: np.load(p) for p in sorted(d.glob("*.npy"))}
    assert outs["x86"] and outs["x86"].keys() == outs["arm"].keys()
    return outs["x86"], outs["arm"]


def test_fp32_convnet_same_on_aarch64(native_host, native_aarch64, tmp_path):
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    pkg = _export(tmp_path, ConvNet(), x, "fp32")
    x86, arm = _run_both(native_host, native_aarch64, pkg, tmp_path, x)
    for k in x86:
        np.testing.assert_allclose(arm[k], x86[k], rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("scheme", ["w8a8", "w4a8-g32"])
def test_quantized_mlp_bitwise_on_aarch64(native_host, native_aarch64, tmp_path, scheme):
    torch.manual_seed(0)
    x = np.random.default_rng(1).standard_normal((4, 64)).astype(np.float32)
    pkg = _export(tmp_path, Mlp(), x, scheme)
    x86, arm = _run_both(native_host, native_aarch64, pkg, tmp_path, x[:1])
    for k in x86:
        assert x86[k].dtype == arm[k].dtype and x86[k].shape == arm[k].shape
        np.testing.assert_array_equal(arm[k], x86[k], err_msg=f"{scheme} output {k} differs between x86 and aarch64")
