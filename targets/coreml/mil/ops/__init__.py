"""One torch kernel per MIL op: ``KERNELS[op_type](args) -> tensor | list of tensors``.

Each kernel's docstring names the coremltools definition it follows (``mil/ops/defs/<opset>/<file>.py``,
class of the same name). Kernels compute floats in float32; the interpreter rounds every output to the
dtype the program declares. Modules register their kernels with :func:`kernel` on import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

KERNELS: dict[str, Callable[[Any], Any]] = {}


def kernel(*names: str):
    """Register the decorated function as the kernel of the MIL ops ``names``."""

    def register(fn):
        for name in names:
            if name in KERNELS:
                raise ValueError(f"two kernels for MIL op `{name}`")
            KERNELS[name] = fn
        return fn

    return register


from edgeir.targets.coreml.mil.ops import (  # noqa: E402,F401  (registration on import)
    elementwise,
    image,
    linear,
    normalization,
    quantization,
    reduction,
    tensor,
)
