"""pytest entry point ``edgeir-kit`` (group ``pytest11``): lets ``pytest --pyargs edgeir.testing --method NAME``
parse its options.

It does nothing in other pytest runs: it only registers :mod:`edgeir.testing.options` when the command
line names the ``edgeir.testing`` package with ``--pyargs`` (see that module for why). Imports nothing heavy.
"""

from __future__ import annotations

import pytest

PACKAGE = "edgeir.testing"


def names_kit(args: list[str]) -> bool:
    """Whether one of the positional arguments is the kit's package or a module or test inside it."""
    return any(str(arg).split("::")[0] == PACKAGE or str(arg).startswith(PACKAGE + ".") for arg in args)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    namespace = early_config.known_args_namespace
    if getattr(namespace, "pyargs", False) and names_kit(list(getattr(namespace, "file_or_dir", None) or [])):
        from edgeir.testing.options import register

        register(early_config.pluginmanager)
