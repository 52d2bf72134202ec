"""Runner of a Core ML bundle through edgeir's MIL interpreter (``edgeir-mil``), on any host.

Core ML's own runtime needs macOS; this runner interprets the ML Program the bundle's package
holds (:mod:`edgeir.targets.coreml.mil`), so ``verify``, ``run`` and the export check get numbers on
Linux. It checks the conversion and the program's arithmetic, not Apple's kernels or the Neural
Engine.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeir.target import Runner, package_version

NOTE = ("numbers from edgeir's interpreter of the saved ML Program (edgeir-mil: every op with torch kernels, "
        "outputs rounded to the program's declared dtypes): this checks the conversion and the program's "
        "arithmetic, not Apple's Core ML kernels, their accumulation order or the Neural Engine")


def runtime_name() -> str:
    """``edgeir-mil`` with the coremltools version whose loader read the program."""
    return f"edgeir-mil (coremltools {package_version('coremltools')})"


class MILRunner(Runner):
    """Runs a bundle's programs by interpreting its package; one function per program (``main`` when single).

    Raises (on construction):
        NotInterpreted: if the package holds an op without a kernel (see :func:`unsupported_reason`).
    """

    note = NOTE

    def __init__(self, package: Path, programs: list[dict[str, Any]], program=None) -> None:
        from edgeir.targets.coreml.mil import MILProgram, NotInterpreted, message_for

        self.runtime = runtime_name()
        self.program = program if program is not None else MILProgram(package)
        missing = self.program.unsupported()
        if missing:
            raise NotInterpreted(message_for(missing))
        self._programs = {p["name"]: p for p in programs}
        functions = self.program.functions
        self._function = {p["name"]: (p["name"] if p["name"] in functions else functions[0]) for p in programs}
        self._said_slow = False

    def function(self, program: str) -> str:
        """The package function that holds ``program``."""
        return self._function[program]

    def feeds(self, program: str, inputs: Sequence[np.ndarray]) -> dict[str, Any]:
        spec = self._programs[program]
        return {i["name"]: torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
                for i, x in zip(spec["inputs"], inputs, strict=True)}

    def run(self, program: str, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        spec = self._programs[program]
        result = self.program.run(self.function(program), self.feeds(program, inputs))
        return [result[o["name"]].float().cpu().numpy() for o in spec["outputs"]]

    def say_slow_once(self) -> None:
        """One line on stderr: the photos go through an interpreter, far slower than Core ML on a device."""
        if not self._said_slow:
            print("note: Core ML cannot run on this host; running the package through edgeir's MIL interpreter "
                  "(edgeir-mil), op by op with torch: slow, and numbers are the program's, not Apple's kernels'",
                  file=sys.stderr)
            self._said_slow = True


def unsupported_reason(package: Path) -> str:
    """Empty when every op of the package has a kernel, else the one-line 'not interpreted' result."""
    from edgeir.targets.coreml.mil import MILProgram, message_for

    missing = MILProgram(package).unsupported()
    return message_for(missing) if missing else ""
