"""Timing helpers shared by the benchmarks in bench/ (imported as a sibling module: the scripts run as
`python bench/NAME.py`, which puts bench/ first on sys.path)."""
from __future__ import annotations

import os
import threading
import time


def settle(timeout_s: float = 0.3) -> float:
    """Waits (up to `timeout_s`) until no other thread of this process is running; returns the wait.

    Engines leave threads spinning after a call: ONNX Runtime's intra-op workers (allow_spinning)
    spin ~20-40 ms of CPU after every Run on this VM (session 11), PyTorch's OpenMP workers
    likewise, lowbit's pool 50 us. On a 2-core machine such a spinner holds the second core while
    the NEXT engine of the round runs, so every 2-thread row after it ran on about one core (the
    2-thread lowbit rows and the read probe no faster than their 1-thread rows). Each timed call
    therefore starts on a settled machine, as it would in a process running that engine alone.
    Linux only (/proc/self/task); elsewhere it returns at once."""
    task_dir = "/proc/self/task"
    if not os.path.isdir(task_dir):
        return 0.0
    me = str(threading.get_native_id())

    def running() -> bool:
        for tid in os.listdir(task_dir):
            if tid == me:
                continue
            try:
                with open(f"{task_dir}/{tid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "R":
                        return True
            except (OSError, IndexError):
                pass  # the thread ended
        return False

    t0 = time.perf_counter()
    idle = 0
    while idle < 2 and time.perf_counter() - t0 < timeout_s:  # two idle looks 0.5 ms apart
        idle = 0 if running() else idle + 1
        time.sleep(0.0005)
    return time.perf_counter() - t0
