"""`make demo`: lowbit's main job on a default model.

Until the exporter and runtime land this shows the build, the CPU and the kernel self-check.
TODO(#4, #5): export EfficientNet-Lite0 to a device package, classify a sample image, print the
top-5 classes and the latency beside ONNX Runtime float.
"""
from __future__ import annotations

import sys
from types import SimpleNamespace

from lowbit import doctor


def main() -> int:
    return doctor.run(SimpleNamespace(json=False, selfcheck=True, measure=False))


if __name__ == "__main__":
    sys.exit(main())
