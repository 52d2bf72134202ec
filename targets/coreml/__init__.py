"""Core ML target: ``.mlpackage`` export (:mod:`.export`) and, where Core ML itself cannot run, edgeir's
own interpreter of the saved ML Program (:mod:`.mil`, runtime ``edgeir-mil``)."""

from edgeir.targets.coreml.export import (
    DEBUG_HANDLE_MAP,
    PACKAGE,
    SKIPPED_PASSES,
    TARGET,
    CoreMLTarget,
    compute_precision_name,
)

__all__ = ["DEBUG_HANDLE_MAP", "PACKAGE", "SKIPPED_PASSES", "TARGET", "CoreMLTarget", "compute_precision_name"]
