"""Errors edgeir raises, each with the exit code the CLI maps it to.

Users see the message as one sentence; ``--debug`` shows the chained traceback.
"""

from __future__ import annotations


class EdgeirError(Exception):
    """Base class; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class UsageError(EdgeirError):
    """The user asked for something that does not exist or cannot work (a name, a file, a flag)."""

    exit_code = 2


class UnknownNameError(UsageError):
    """A name (method, variant, task, target, scheme) is not registered."""


class CheckpointError(UsageError):
    """A checkpoint cannot be read safely or does not fit the model."""


class ImageError(UsageError):
    """An image file cannot be read or written."""


class PluginLoadError(EdgeirError):
    """A plugin could not be loaded, or two plugins claim the same name."""

    exit_code = 3


class StageError(EdgeirError):
    """A stage of a pipeline failed; ``stage`` names it and the cause is chained."""

    exit_code = 4

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"stage '{stage}' failed: {message}")
        self.stage = stage


class CheckFailed(EdgeirError):
    """A measured check (verification tolerance, gate rule) did not hold."""

    exit_code = 5


class GateFileError(UsageError):
    """A gate file cannot be used: bad TOML, an unknown key, a wrong value, a bundle that is not there.

    The message names the file and, where it can be found, the line.
    """


class GateFailed(EdgeirError):
    """At least one gate rule did not hold. ``edgeir gate`` exits 1, as CI systems expect of a failed check."""

    exit_code = 1


class IntegrityError(UsageError):
    """A bundle is not what its export wrote: a file or the manifest changed, an entry is missing, or a
    signature does not verify. Nothing runs on such a bundle (exit 2, like any bad input)."""


class BatchError(UsageError):
    """Some photos of a folder run failed; the others were written.

    ``written`` lists the files written, ``failures`` one ``(input, reason)`` per photo that failed.
    """

    def __init__(self, message: str, written: list, failures: list) -> None:
        super().__init__(message)
        self.written = written
        self.failures = failures
