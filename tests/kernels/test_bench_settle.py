"""bench/benchutil.py's `settle` (bench/kernels.py and bench/models.py call it): before each timed
call it waits until no other thread of the process runs (ONNX Runtime's and PyTorch's workers spin
for milliseconds after a call and took the second core from the next engine of the round: session 11).
It must wait out a spinning thread and return at once when none runs."""
import importlib.util
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import lowbit

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="settle reads /proc/self/task")


def _benchutil():
    spec = importlib.util.spec_from_file_location("benchutil", ROOT / "bench" / "benchutil.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_settle_waits_for_a_spinning_thread():
    kb = _benchutil()
    started = threading.Event()
    spin_s = 0.08

    nat = lowbit.native()
    buf = np.ones(32 << 20, np.uint8)

    def spin():  # native reads with the GIL released, like another engine's worker threads
        started.set()
        end = time.perf_counter() + spin_s
        while time.perf_counter() < end:
            nat.read_probe(buf)

    t = threading.Thread(target=spin)
    t.start()
    started.wait()
    waited = kb.settle(timeout_s=2.0)
    alive = t.is_alive()
    t.join()
    # it returned only once the spinner had stopped running (a loaded machine may stretch the spin)
    assert not alive or waited >= 2.0
    assert waited >= 0.5 * spin_s


def test_settle_returns_at_once_when_idle():
    kb = _benchutil()
    assert kb.settle(timeout_s=2.0) < 0.5
