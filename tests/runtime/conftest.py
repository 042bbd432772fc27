"""Fixtures of the runtime tests (they live in runtime_helpers.py; see there why)."""
from runtime_helpers import ROOT, effnet, minilm, ort_run, ppocr_det, rt_dir, run  # noqa: F401
