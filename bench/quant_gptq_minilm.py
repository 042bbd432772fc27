"""Time GPTQ (w4a8-g32-gptq) on all-MiniLM-L6-v2 with 128 calibration sentences: calibration
(Hessians) + quantization, without the accuracy report. Prints JSON. Target: under a minute on 2 cores.

    .venv/bin/python bench/quant_gptq_minilm.py [ONNX]   (default: build/quant-cache/minilm_l6_v2_s32.onnx,
                                                          made by the quant tests)
"""
from __future__ import annotations

import json
import os
import sys
import time

from lowbit import zoo
from lowbit.calib import input_shapes, load_calib
from lowbit.importers import import_onnx
from lowbit.quant.pipeline import QuantOptions, quantize_graph


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "build/quant-cache/minilm_l6_v2_s32.onnx"
    feeds = zoo.minilm_feeds(zoo.sentences(128))
    graph = import_onnx(path, input_shapes(feeds))
    feeds = load_calib(feeds, graph.inputs)
    t0 = time.perf_counter()
    quantize_graph(graph, "w4a8-g32-gptq", feeds, QuantOptions(progress=False))
    dt = time.perf_counter() - t0
    print(json.dumps({"bench": "gptq_minilm_w4a8_g32", "sentences": len(feeds), "seconds": round(dt, 2),
                      "cpus": os.cpu_count(), "loadavg_1min": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
