"""Quantization: the scheme and engine contracts (:mod:`.scheme`), the quantize stage with its calibration
data and fake-quant check (:mod:`.stage`), and the per-layer sensitivity report (:mod:`.sensitivity`).
The engines themselves live in ``edgeir.quant`` (registered through entry points, like targets)."""
