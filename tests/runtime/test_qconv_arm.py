"""Quantized convs (qconv2d_f32: gemm and depthwise modes, static / dynamic_tensor / dynamic_block
activations) give bitwise the same outputs on x86 (AVX2) and on aarch64 (NEON kernels, scalar
depthwise reference) from one .lbpk: lowbit-run under qemu-aarch64."""
import numpy as np
import pytest

from lowbit_testutil import run

pytestmark = pytest.mark.qemu
torch = pytest.importorskip("torch")


class _QConvNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 32, 3, padding=1)        # K = 27: int8 even in w4a8
        self.dw = torch.nn.Conv2d(32, 32, 3, stride=2, padding=1, groups=32)  # depthwise
        self.pw = torch.nn.Conv2d(32, 16, 1)                     # K = 32: int4 g32 in w4a8
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x):
        y = torch.nn.functional.relu6(self.dw(torch.relu(self.stem(x))))
        return self.fc(torch.relu(self.pw(y)).mean(dim=(2, 3)))


@pytest.mark.parametrize("scheme", ["w8a8", "w4a8-g32"])
def test_qconv_bitwise_on_aarch64(native_host, native_aarch64, tmp_path, scheme):
    import lowbit
    from lowbit.exporters.lbpk_container import PackageReader

    torch.manual_seed(0)
    x = np.random.default_rng(2).standard_normal((4, 3, 20, 23)).astype(np.float32)
    calib = [(torch.from_numpy(x[i:i + 1]),) for i in range(len(x))]
    pkg = lowbit.export(_QConvNet().eval(), tmp_path / f"{scheme}.lbpk", example_inputs=(torch.from_numpy(x[:1]),),
                        scheme=scheme, calib=calib)
    man = PackageReader(pkg).manifest
    modes = {(o["attrs"].get("mode"), o["attrs"].get("aq")) for o in man["ops"]
             if o["kernel"] in ("qconv2d_f32", "qconv2d_nhwc_q8")}  # w8a8: an int8 NHWC chain
    assert ("depthwise", "static" if scheme == "w8a8" else "dynamic_tensor") in modes, modes
    if scheme == "w4a8-g32":
        assert ("gemm", "dynamic_block") in modes, modes
    np.save(tmp_path / "x.npy", x[:1])
    outs = {}
    for name, cmd in (("x86", [native_host / "lowbit-run"]),
                      ("arm", ["qemu-aarch64", "-cpu", "max", native_aarch64 / "lowbit-run"])):
        d = tmp_path / name
        d.mkdir()
        r = run(cmd + ["run", pkg, "--input", f"{man['inputs'][0]['name']}={tmp_path / 'x.npy'}", "--output", d])
        assert r.returncode == 0, r.stdout + r.stderr
        outs[name] = {p.stem: np.load(p) for p in sorted(d.glob("*.npy"))}
    assert outs["x86"] and outs["x86"].keys() == outs["arm"].keys()
    for k in outs["x86"]:
        np.testing.assert_array_equal(outs["arm"][k], outs["x86"][k], err_msg=f"{scheme} {k}: x86 != aarch64")
