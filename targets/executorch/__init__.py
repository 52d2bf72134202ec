"""ExecuTorch target: ``.pte`` export with the XNNPACK, Core ML or portable backend (:mod:`.export`), the
generic graph passes that keep every method in one XNNPACK delegate (:mod:`.xnnpack_passes`), the runtime
(:mod:`.runtime`) and inspection of lowered graphs and programs (:mod:`.inspection`)."""

from edgeir.targets.executorch.export import PTE, TARGET, ExecuTorchTarget

__all__ = ["PTE", "TARGET", "ExecuTorchTarget"]
