"""`lowbit.export(DIR, out)` without a scheme picks the decoder default (w4a8-g32), and exported
files get ordinary permissions (not mkstemp's owner-only 0600)."""
import json
import os
import stat

import lowbit
from lowbit.exporters.lbpk_container import PackageReader


def test_hf_folder_defaults_to_w4a8_g32(tiny_llama, tmp_path):
    old = os.umask(0o022)
    try:
        out = lowbit.export(tiny_llama[0], tmp_path / "m.lbpk")
    finally:
        os.umask(old)
    manifest = PackageReader(out).manifest
    assert manifest.get("kind") == "llm"
    assert "w4a8-g32" in json.dumps(manifest)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
