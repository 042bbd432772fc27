"""Quantization passes: schemes, calibration, RTN/GPTQ/codebooks/ternary, smoothing, mixed precision."""
