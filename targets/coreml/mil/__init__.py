"""edgeir's interpreter of Core ML ML Programs (``edgeir-mil``): the saved program, run with torch kernels.

:mod:`.interpreter` loads a package and runs its functions; :mod:`.ops` holds one kernel per MIL op,
each following the op's definition in coremltools' ``mil/ops/defs``; :mod:`.locate` names the first op
whose output departs from the eager model's intermediate.
"""

from edgeir.targets.coreml.mil.interpreter import RUNTIME, MILProgram, NotInterpreted, load_program, message_for

__all__ = ["RUNTIME", "MILProgram", "NotInterpreted", "load_program", "message_for"]
