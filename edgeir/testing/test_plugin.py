"""The conformance kit as pytest tests: one test per check of each ``--method`` (see ``conftest.py``)."""

from __future__ import annotations

import pytest

from edgeir.testing.conformance import Check, NotRun


def test_plugin(kit_check: Check) -> None:
    """Run one check; a check that cannot run on this host is skipped with the target's reason."""
    try:
        kit_check.run()
    except NotRun as exc:
        pytest.skip(f"{kit_check.name}: {exc}")
