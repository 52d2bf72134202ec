"""The kit's pytest options (``--method``, ``--targets``, ``--photos``), registered as one named pytest plugin.

pytest reads a package's ``conftest.py`` only after it has parsed the command line when the package is
named with ``--pyargs``, too late for ``pytest --pyargs edgeir.testing --method NAME``. So edgeir declares a
``pytest11`` entry point (:mod:`edgeir.testing.pytest_plugin`) that registers this module before parsing,
only for runs that name ``edgeir.testing``; ``conftest.py`` registers it when the kit is run by path.
Either way it is registered once, under :data:`PLUGIN_NAME`.
"""

from __future__ import annotations

import pytest

PLUGIN_NAME = "edgeir-kit-options"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("edgeir", "edgeir plugin conformance kit (pytest --pyargs edgeir.testing)")
    group.addoption("--method", action="append", default=[], metavar="NAME",
                    help="method plugin to check, by its entry-point name (repeatable)")
    group.addoption("--targets", default=None, metavar="T[,T...]",
                    help="comma-separated targets to export to (default: every registered target)")
    group.addoption("--photos", type=int, default=2, metavar="N", help="built-in photos verify runs on (default 2)")


def register(pluginmanager: pytest.PytestPluginManager) -> None:
    """Register the options unless they already are (pytest adds them to the parser at registration)."""
    import sys

    if not pluginmanager.has_plugin(PLUGIN_NAME):
        pluginmanager.register(sys.modules[__name__], PLUGIN_NAME)
