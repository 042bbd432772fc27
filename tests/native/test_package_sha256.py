"""The package reader's SHA-256 (multi-buffer SHA-NI where the CPU has it) through the Python
binding, against hashlib: odd lengths, unaligned views, lists of messages of very different lengths."""
import hashlib

import numpy as np


def test_sha256_many_matches_hashlib(nat):
    rng = np.random.default_rng(7)
    data = rng.integers(0, 256, size=(1 << 20) + 100, dtype=np.uint8)
    lengths = [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 1000, 4096 + 17, (1 << 20) + 99]
    views = [data[i % 13:i % 13 + n] for i, n in enumerate(lengths)]
    for bufs in (views, views[::-1], views[-1:], []):
        got = nat.sha256_many(bufs)
        assert got == [hashlib.sha256(b.tobytes()).digest() for b in bufs], nat.sha256_impl()
    assert nat.sha256_impl() in ("sha-ni", "portable")
