"""Options and parametrisation of the conformance kit under pytest: ``pytest --pyargs edgeir.testing --method NAME``.

The options come from :mod:`edgeir.testing.options` (registered early by the ``pytest11`` entry point
under ``--pyargs``, else here). ``--method`` (repeatable) names the installed method plugins to check;
``--targets`` restricts the targets (comma-separated, default all registered) and ``--photos`` sets how
many built-in photos ``verify`` uses. Each check of :func:`edgeir.testing.conformance.plan` becomes one
test, ``test_plugin[NAME-CHECK]`` (e.g. ``test_plugin[nafnet-export-onnx]``); the bundles go to one
temporary directory per session, removed at its end. Without ``--method`` the kit's test is skipped and
says how to run it.
"""

from __future__ import annotations

import os

import pytest

NO_METHOD = ("edgeir.testing checks an installed method plugin: give --method NAME (repeatable), e.g. "
             "'pytest --pyargs edgeir.testing --method nafnet'")
_ROOT_ATTR = "_edgeir_kit_root"


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    from edgeir.testing.options import register

    register(pluginmanager)  # once: the pytest11 entry point may have done it already (--pyargs)


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("EDGEIR_PROGRESS", "0")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kit_check" not in metafunc.fixturenames:
        return
    from edgeir.errors import EdgeirError
    from edgeir.testing.conformance import plan, workdir

    config = metafunc.config
    names = config.getoption("method")
    if not names:
        metafunc.parametrize("kit_check", [pytest.param(None, marks=pytest.mark.skip(reason=NO_METHOD))],
                             ids=["no-method"])
        return
    targets = [t.strip() for t in config.getoption("targets").split(",") if t.strip()] \
        if config.getoption("targets") else None
    if not hasattr(config, _ROOT_ATTR):
        setattr(config, _ROOT_ATTR, workdir(prefix="edgeir-kit-pytest-"))
    params = []
    for name in dict.fromkeys(names):
        try:
            checks = plan(name, getattr(config, _ROOT_ATTR) / name, targets, config.getoption("photos"))
        except EdgeirError as exc:  # an unknown target name: a usage error, said once
            raise pytest.UsageError(str(exc)) from exc
        # ids without brackets inside pytest's own: 'nafnet-export-onnx' selects with -k like any other
        params += [pytest.param(check, id=f"{name}-{check.name.replace('[', '-').rstrip(']')}") for check in checks]
    metafunc.parametrize("kit_check", params)


def pytest_unconfigure(config: pytest.Config) -> None:
    root = getattr(config, _ROOT_ATTR, None)
    if root is not None:
        from edgeir.testing.conformance import remove_workdir

        remove_workdir(root)
