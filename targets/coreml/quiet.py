"""coremltools' own progress bars follow edgeir's progress policy (:func:`edgeir.progress.progress_enabled`).

coremltools draws tqdm bars for the torch frontend, every MIL pass and every weight-compression pass; in a log
that is not a terminal each redraw is a line (hundreds per conversion). Where edgeir hides its bars, the
converter's are hidden too.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Iterator

from edgeir.progress import progress_enabled

# (module, attribute) of the tqdm names coremltools 9 converts with.
_BARS = (("coremltools.converters.mil.frontend.torch.ops", "_tqdm"),
         ("coremltools.converters.mil.mil.passes.pass_pipeline", "tqdm"),
         ("coremltools.optimize.coreml._quantization_passes", "tqdm"))


@contextlib.contextmanager
def converter_progress() -> Iterator[None]:
    """Within the block, coremltools' bars are disabled unless edgeir would show its own."""
    if progress_enabled():
        yield
        return
    saved = []
    for module_name, attribute in _BARS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        original = getattr(module, attribute, None)
        if original is None:
            continue
        saved.append((module, attribute, original))
        setattr(module, attribute, functools.partial(original, disable=True))
    try:
        yield
    finally:
        for module, attribute, original in saved:
            setattr(module, attribute, original)
