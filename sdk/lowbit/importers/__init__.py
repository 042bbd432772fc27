"""Importers: ONNX files and torch.nn.Modules -> lowbit graph IR."""
from lowbit.importers.onnx_import import import_onnx, import_torch, load_model  # noqa: F401
