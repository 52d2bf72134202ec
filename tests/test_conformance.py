"""Every registered method x every registered target through the plugin kit (edgeir.testing), the same checks a
third-party plugin runs in its own CI: spec, declared parameters, I/O contract on every task, checkpoint round
trip; per target export, verify on built-in photos, and recipe I/O against the exported program.

Adding a method or a target enrols it here automatically; methods run their ``tiny`` variant, exported once per
session (the ``exported`` fixture shares the bundles with other tests). The test ids carry the target, and
conftest.py marks each case ``target_<name>``.
"""

import pytest

from edgeir.discovery import methods, targets
from edgeir.testing import conformance as kit

METHODS = methods().registry.names()
TARGETS = targets().registry.names()
METHOD_CHECKS = {"spec": kit.check_spec, "declared-params": kit.check_declared_params,
                 "io-contract": kit.check_io_contract, "checkpoint": kit.check_checkpoint_round_trip}
TARGET_CHECKS = {"export": kit.check_export, "verify": kit.check_verify, "recipe-io": kit.check_recipe_io}


def _run(check, *args) -> str:
    try:
        return check(*args)
    except kit.NotRun as exc:  # the target cannot run the artifact on this host: it says why
        pytest.skip(str(exc))


def test_every_method_loads():
    assert not methods().failures, methods().failures
    assert METHODS


@pytest.mark.parametrize("check", list(METHOD_CHECKS))
@pytest.mark.parametrize("method", METHODS)
def test_method(method, check):
    _run(METHOD_CHECKS[check], method)


@pytest.mark.parametrize("check", list(TARGET_CHECKS))
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("method", METHODS)
def test_target(method, target, check, kit_exports):
    arguments = (kit_exports(method), target) + ((1,) if check == "verify" else ())  # one photo: the grid is wide
    _run(TARGET_CHECKS[check], *arguments)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("method", METHODS)
def test_bundle_is_named_after_what_it_holds(method, target, exported):
    bundle = exported(method, target)
    manifest = bundle.manifest
    assert bundle.path.name == f"{method}-tiny-{manifest['task']}-{target}-{manifest['quant']}"
    for record in manifest["rewrites_applied"]:
        assert record["max_abs_change"] < 1e-4
