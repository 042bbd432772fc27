"""Sentence embeddings with all-MiniLM-L6-v2 on the lowbit runtime.

    python samples/python/minilm_embeddings.py [--package minilm.lbpk] [--seq-len 128] "a sentence" ...

Without --package it exports the model first (PyTorch -> ONNX -> .lbpk, fp32). Prints each
sentence's embedding norm and the cosine-similarity matrix.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

import lowbit
from lowbit import zoo

DEFAULT = ["A man is playing a guitar.", "Someone plays an instrument on the street.", "The stock market fell today."]


def export_minilm(out: Path, seq_len: int) -> Path:
    import torch
    from lowbit.exporters.lbpk import write_package
    from lowbit.importers.onnx_import import import_torch

    feeds = zoo.minilm_feeds(["hello"], seq_len=seq_len)[0]
    g = import_torch(zoo.MiniLMEncoder(), feeds, output_names=["embedding"])
    return write_package(g, out, target="auto", scheme="fp32")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sentences", nargs="*", default=DEFAULT)
    ap.add_argument("--package", help="a MiniLM .lbpk (default: export one to a temporary folder)")
    ap.add_argument("--seq-len", type=int, default=128, help="token length the package was exported for")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    pkg = Path(args.package) if args.package else export_minilm(Path(tempfile.mkdtemp()) / "minilm.lbpk", args.seq_len)
    sess = lowbit.load(pkg, threads=args.threads)
    seq = next(i["shape"][1] for i in sess.inputs if i["name"] == "input_ids")
    embs = []
    for feeds in zoo.minilm_feeds(args.sentences, seq_len=seq):
        embs.append(sess.run(feeds)["embedding"][0])
    e = np.stack(embs)
    for s, v in zip(args.sentences, e):
        print(f"{np.linalg.norm(v):.4f}  {s}")
    sim = e @ e.T
    print("cosine similarity:")
    for row in sim:
        print("  " + " ".join(f"{v:6.3f}" for v in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
