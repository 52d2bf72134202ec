"""Every registered method x every registered target: build, forward, export, run, compare, verify.

Adding a method or a target enrols it here automatically; methods run their ``tiny`` variant.
"""

import json

import pytest
import torch

import edgeir
from edgeir.discovery import methods, targets
from edgeir.target import Availability

METHODS = methods().registry.names()
TARGETS = targets().registry.names()


def test_every_method_has_paper_and_tiny_and_loads():
    assert not methods().failures, methods().failures
    for name in METHODS:
        spec = methods().get(name)
        assert {"paper", "tiny"} <= set(spec.variant_names)


@pytest.mark.parametrize("method", METHODS)
def test_io_contract_holds_in_eager_forward(method):
    spec = methods().get(method)
    model = edgeir.build_model(method, variant="tiny")
    io = spec.io("tiny", spec.default_task)
    size = 8 * io.size_multiple
    x = torch.rand(1, io.in_channels, size, size + io.size_multiple)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, io.out_channels, size * io.scale, (size + io.size_multiple) * io.scale)
    assert torch.isfinite(y).all()
    if io.size_multiple > 1:
        with pytest.raises(ValueError):
            model(torch.rand(1, io.in_channels, size + 1, size))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("method", METHODS)
def test_export_run_compare(method, target, exported):
    bundle = exported(method, target)
    manifest = bundle.manifest
    assert bundle.path.name == f"{method}-tiny-{manifest['task']}-{target}-{manifest['quant']}"
    assert manifest["weights"]["source"] == "random-init"
    assert not bundle.check_integrity()
    assert set(manifest["files"]) and all(len(h) == 64 for h in manifest["files"].values())
    for record in manifest["rewrites_applied"]:
        assert record["max_abs_change"] < 1e-4
    check = manifest["export_check"]
    runner = targets().get(target).runtime(bundle)
    if isinstance(runner, Availability):
        assert check["status"] == "not-run" and check["reason"]
    else:
        assert check["status"] == "passed"
        assert min(p["psnr_db"] for p in check["programs"].values()) >= 60


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("method", METHODS)
def test_verify_on_builtin_photos(method, target, exported):
    bundle = exported(method, target)
    report = edgeir.verify(bundle.path, photos=2)
    written = json.loads((bundle.path / "verify.json").read_text())
    assert written["status"] == report.status
    if isinstance(targets().get(target).runtime(bundle), Availability):
        assert report.status == "not-run"
        assert report.reason
        assert written["structure"]
        return
    assert report.status == "passed"
    threshold = written["threshold_db"]
    for program in written["programs"].values():
        assert program["min_psnr_db"] >= threshold
        assert len(program["photos"]) == 2
