"""The samples tests reuse the runtime tests' model fixtures (tests/runtime/runtime_helpers.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from runtime_helpers import ROOT, effnet, minilm, ort_run, rt_dir, run  # noqa: E402,F401
