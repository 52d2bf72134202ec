"""Quantization engines and precision schemes, one module per family (``edgeir.quant``)."""
