"""Every registered method x target x scheme the target offers on its default backend: export, then verify.

The target's default scheme is the conformance grid's (tests/test_conformance.py). Float schemes run in the
default suite; integer and weight-compression schemes, and QAT, are marked ``slow`` (each export calibrates,
and QAT trains): ``pytest -m slow tests/test_quant_grid.py`` runs them. A new method, target or scheme
enrols here by registering.
"""

import pytest

import edgeir
from edgeir.discovery import methods, quant_schemes, targets
from edgeir.errors import UsageError
from edgeir.quantization.stage import engine_for
from edgeir.target import ExportOptions


def _engine(target_name: str, scheme_name: str) -> tuple[bool, object]:
    """Whether the target's default backend offers the scheme, and the engine that serves it (None: native)."""
    target = targets().get(target_name)
    try:
        return True, engine_for(target, ExportOptions(target.default_backend, scheme_name),
                                quant_schemes().get(scheme_name))
    except UsageError:  # the scheme needs another backend (ExecuTorch fp16: the Core ML delegate)
        return False, None


def _grid():
    for target_name in targets().registry.names():
        target = targets().get(target_name)
        for scheme_name in target.quant_schemes:
            offered, engine = _engine(target_name, scheme_name)
            if scheme_name == target.default_quant or not offered:
                continue
            native = engine is None  # a precision the target exports itself: no calibration, no training
            steps = (0, 2) if quant_schemes().get(scheme_name).trainable else (0,)
            for method in methods().registry.names():
                for qat_steps in steps:
                    marks = () if native else (pytest.mark.slow,)
                    yield pytest.param(method, target_name, scheme_name, qat_steps, marks=marks,
                                       id=f"{method}-{target_name}-{scheme_name}" + (f"-qat{qat_steps}" if qat_steps
                                                                                      else ""))


@pytest.mark.parametrize("method,target,quant,qat_steps", list(_grid()))
def test_scheme_exports_and_verifies(method, target, quant, qat_steps, tmp_path):
    bundle = edgeir.export(method, target, variant="tiny", quant=quant, qat_steps=qat_steps, output=tmp_path,
                           weights="random")
    assert bundle.manifest["quant"] == quant
    check = bundle.manifest["export_check"]
    report = edgeir.verify(bundle.path, photos=1)
    if check["status"] == "not-run":
        assert report.status == "not-run" and report.reason
        return
    assert check["status"] == "passed"
    assert report.status == "passed", report.data
    threshold = quant_schemes().get(quant).verify_threshold_db
    for program in report.data["programs"].values():
        if program.get("status") != "not-run":
            assert program["min_psnr_db"] >= threshold
