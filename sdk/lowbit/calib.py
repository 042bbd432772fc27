"""Calibration data: from Python (an iterable of feed dicts or input tuples, one array per model
input) or from disk (an ``.npz`` file or a folder of ``.npy`` files keyed by input name), checked
against the model's inputs (names, ranks, fixed sizes, dtypes) with errors that say what to fix.

On disk, ``NAME`` (the npz key or ``NAME.npy``) holds one array per model input. Its first axis
counts samples when it has one more dimension than the input; when it has the input's rank, it is
split along the batch axis into batch-1 samples. A folder of ``.npy`` files that are not named
after inputs (one-input models only) holds one sample per file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Sequence

import numpy as np

from lowbit import LowbitError
from lowbit.ir import TensorInfo

_KIND = {"float32": "f", "float16": "f", "float64": "f", "int64": "i", "int32": "i", "int8": "i",
         "uint8": "u", "bool": "b"}


def _split_samples(name: str, arr: np.ndarray, info: TensorInfo) -> List[np.ndarray]:
    rank = len(info.shape)
    if arr.ndim == rank + 1:
        return [arr[i] for i in range(arr.shape[0])]
    if arr.ndim == rank:
        return [arr[i:i + 1] for i in range(arr.shape[0])] if rank else [arr]
    raise LowbitError(f"calibration array {name!r} has shape {arr.shape}; input {info.name!r} has rank "
                      f"{rank} (give [samples, *shape] or a batch of shape {info.shape})")


def _from_arrays(arrays: Dict[str, np.ndarray], inputs: Sequence[TensorInfo], where: str) -> List[Dict[str, np.ndarray]]:
    names = [t.name for t in inputs]
    unknown = sorted(set(arrays) - set(names))
    missing = [n for n in names if n not in arrays]
    if unknown or missing:
        raise LowbitError(f"calibration data in {where} has arrays {sorted(arrays)} but the model's inputs are "
                          f"{names}" + (f" (missing {missing})" if missing else "") +
                          (f" (unknown {unknown})" if unknown else ""))
    per_input = {t.name: _split_samples(t.name, np.asarray(arrays[t.name]), t) for t in inputs}
    counts = {n: len(v) for n, v in per_input.items()}
    if len(set(counts.values())) != 1:
        raise LowbitError(f"calibration arrays in {where} hold different sample counts: {counts}")
    return [{n: per_input[n][i] for n in names} for i in range(next(iter(counts.values())))]


def load_calib_path(path, inputs: Sequence[TensorInfo]) -> List[Dict[str, np.ndarray]]:
    p = Path(path)
    if not p.exists():
        raise LowbitError(f"calibration data {str(p)!r} does not exist")
    if p.is_file():
        if p.suffix == ".npy" and len(inputs) == 1:
            return _from_arrays({inputs[0].name: np.load(p)}, inputs, str(p))
        try:
            with np.load(p, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as exc:
            raise LowbitError(f"calibration file {p} is not a readable .npz ({exc})") from exc
        return _from_arrays(arrays, inputs, str(p))
    files = sorted(p.glob("*.npy"))
    if not files:
        raise LowbitError(f"calibration folder {p} has no .npy files")
    named = {f.stem: f for f in files if f.stem in {t.name for t in inputs}}
    if named:
        return _from_arrays({k: np.load(f, allow_pickle=False) for k, f in named.items()}, inputs, str(p))
    if len(inputs) != 1:
        raise LowbitError(f"calibration folder {p}: name the files after the model's inputs "
                          f"({', '.join(t.name + '.npy' for t in inputs)})")
    return [{inputs[0].name: np.load(f, allow_pickle=False)} for f in files]


def load_calib(calib, inputs: Sequence[TensorInfo], limit: int = 0) -> List[Dict[str, np.ndarray]]:
    """Normalise ``calib`` (path, iterable of dicts/tuples/arrays, or None) into checked feed dicts."""
    if calib is None:
        return []
    if isinstance(calib, (str, Path)):
        feeds = load_calib_path(calib, inputs)
    elif isinstance(calib, dict):
        feeds = _from_arrays({k: np.asarray(v) for k, v in calib.items()}, inputs, "the dict given")
    else:
        feeds = []
        names = [t.name for t in inputs]
        for i, item in enumerate(calib):
            if isinstance(item, dict):
                feeds.append({k: np.asarray(v) for k, v in item.items()})
            else:
                if not isinstance(item, (tuple, list)):
                    item = (item,)
                if len(item) != len(names):
                    raise LowbitError(f"calibration sample {i} has {len(item)} arrays; the model has "
                                      f"{len(names)} inputs {names}")
                feeds.append({n: _as_np(v) for n, v in zip(names, item)})
            if limit and len(feeds) >= limit:
                break
    if limit:
        feeds = feeds[:limit]
    if not feeds:
        raise LowbitError("the calibration data is empty")
    for i, f in enumerate(feeds):
        check_feed(f, inputs, f"calibration sample {i}")
    return feeds


def _as_np(v):
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def check_feed(feed: Dict[str, np.ndarray], inputs: Sequence[TensorInfo], what: str) -> None:
    names = [t.name for t in inputs]
    if set(feed) != set(names):
        raise LowbitError(f"{what} has inputs {sorted(feed)}; the model's inputs are {names}")
    for t in inputs:
        a = feed[t.name]
        if a.ndim != len(t.shape):
            raise LowbitError(f"{what}: input {t.name!r} has shape {a.shape}, the model expects rank "
                              f"{len(t.shape)} {tuple(t.shape)}")
        for d, s in zip(a.shape, t.shape):
            if isinstance(s, int) and s > 0 and d != s:
                raise LowbitError(f"{what}: input {t.name!r} has shape {a.shape}, the model expects "
                                  f"{tuple(t.shape)}")
        want = _KIND.get(t.dtype)
        if want and a.dtype.kind != want and not (want == "f" and a.dtype.kind in "f"):
            raise LowbitError(f"{what}: input {t.name!r} has dtype {a.dtype}, the model expects {t.dtype}")
        if a.dtype.name != t.dtype and t.dtype in _KIND:
            feed[t.name] = a.astype(t.dtype)


def input_shapes(feeds: List[Dict[str, np.ndarray]]) -> Dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in feeds[0].items()} if feeds else {}
