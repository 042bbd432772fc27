"""The same-rounds read probe of bench/kernels.py (`read_probe`, native/src/measure.cpp): it must
read every byte of the buffer, whatever its length, alignment and the pool's thread count (a
probe that skipped a tail would overstate the bandwidth the kernels are compared with)."""
import numpy as np
import pytest

import lowbit


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("size,start", [(1, 0), (127, 1), (4096, 0), (100_003, 5), (1 << 20, 3)])
def test_read_probe_reads_every_byte(threads, size, start):
    nat = lowbit.native()
    pool = nat.ThreadPool(threads) if threads > 1 else None
    base = np.random.default_rng(size).integers(0, 256, size + start, dtype=np.uint8)
    buf = base[start:]
    ref = nat.read_probe(buf, pool)
    assert nat.read_probe(buf, pool) == ref  # deterministic for a given split
    for pos in sorted({0, size // 2, size - 1}):
        changed = buf.copy()
        changed[pos] ^= 0x5A
        assert nat.read_probe(changed, pool) != ref, f"byte {pos} of {size} not read"


def test_read_probe_empty():
    nat = lowbit.native()
    assert nat.read_probe(np.zeros(0, np.uint8)) == 0
