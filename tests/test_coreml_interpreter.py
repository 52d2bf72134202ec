"""Core ML bundles verify numerically on any host through edgeir-mil, the interpreter of the saved ML Program.

Every registered method's ``tiny`` package at fp16 (multifunction packages included: FlexIR with all exits,
DiffIR's prior + restore; fp32 is in the quantization grid, tests/test_quant_grid.py), AnyIR at int8 and w4;
mutated packages fail and the report names the op; ``edgeir run`` restores a photo through the interpreter.
``runtime="mil"`` makes the tests the same on macOS, where Core ML itself is the default runtime.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import edgeir
from edgeir.discovery import methods, quant_schemes
from edgeir.errors import CheckFailed

pytest.importorskip("coremltools")

pytestmark = pytest.mark.target_coreml

METHODS = sorted(methods().registry.names())


def _export(method: str, quant: str, out, **kwargs):
    exits = "all" if method == "flexir" else None
    return edgeir.export(method, "coreml", variant="tiny", quant=quant, output=out, weights="random", exits=exits,
                         **kwargs)


def _assert_numeric(report, quant: str) -> None:
    data = report.data
    assert report.status == "passed", data
    assert data["artifact_runtime"].startswith("edgeir-mil (coremltools ")
    assert "not Apple's Core ML kernels" in data["artifact_runtime_note"]
    scheme = quant_schemes().get(quant)
    # weight-compressed schemes are checked against the reference holding the package's decompressed weights
    threshold = scheme.reference_weights_threshold_db or scheme.verify_threshold_db
    assert data["threshold_db"] == threshold
    checked = [p for p in data["programs"].values() if p["status"] != "not-run"]
    assert checked and all(p["min_psnr_db"] >= threshold for p in checked)


@pytest.mark.parametrize("quant", ["fp16"])
@pytest.mark.parametrize("method", METHODS)
def test_every_method_verifies_numerically(method, quant, tmp_path, exported):
    # fp16 is the target's default: share the session's conformance bundle where it is the same export
    bundle = exported(method, "coreml") if quant == "fp16" and method != "flexir" else _export(method, quant, tmp_path)
    # the export's own check ran the package through the interpreter too
    check = bundle.manifest["export_check"]
    assert check["status"] == "passed" and check["runtime"].startswith("edgeir-mil")
    report = edgeir.verify(bundle.path, photos=1, runtime="mil")
    _assert_numeric(report, quant)
    functions = report.data["structure"]["functions"]
    if method in ("flexir", "diffir"):  # multifunction packages: every function was interpreted
        assert len(functions) >= 2
        assert set(check["programs"]) == {p["name"] for p in bundle.programs}


@pytest.mark.parametrize("quant", ["int8", "w4"])
def test_anyir_quantized_packages_verify_numerically(quant, tmp_path):
    bundle = _export("anyir", quant, tmp_path, input_size=(32, 32))
    report = edgeir.verify(bundle.path, photos=1, runtime="mil")
    _assert_numeric(report, quant)
    ops = report.data["structure"]["functions"]["main"]["op_counts"]
    if quant == "int8":
        assert ops.get("quantize", 0) >= 1 and ops.get("constexpr_affine_dequantize", 0) >= 1
        assert report.data["programs"]["forward"]["fakequant"]["status"] == "passed"
    else:
        assert ops.get("constexpr_lut_to_dense", 0) >= 1


@pytest.fixture(scope="session")
def anyir_fp16(tmp_path_factory):
    return _export("anyir", "fp16", tmp_path_factory.mktemp("coreml-mutation"))


def _mutated(bundle, tmp_path, edit):
    from coreml_mutations import rehash

    copy = tmp_path / bundle.path.name
    shutil.copytree(bundle.path, copy)
    (copy / "verify.json").unlink(missing_ok=True)
    op = edit(copy / "model.mlpackage")
    rehash(copy)
    return copy, op


@pytest.mark.parametrize("mutation", ["transpose-perm", "conv-weight-sign", "epsilon"])
def test_a_mutated_package_fails_and_the_report_names_the_op(mutation, anyir_fp16, tmp_path):
    import coreml_mutations as edits

    edit = {"transpose-perm": edits.swap_transpose_perm,
            "conv-weight-sign": lambda p: edits.negate_conv_weight(p, 3),
            "epsilon": lambda p: edits.set_epsilon(p, edits.normalisations(p)[0], 1000.0)}[mutation]
    path, op = _mutated(anyir_fp16, tmp_path, edit)
    with pytest.raises(CheckFailed, match="first departing op") as failure:
        edgeir.verify(path, photos=1, runtime="mil")
    assert f"`{op}`" in str(failure.value)
    import json

    divergence = json.loads((path / "verify.json").read_text())["programs"]["forward"]["first_divergence"]
    assert divergence["op"] == op or op in divergence["unmatched_inputs"]
    assert divergence["torch_node"] and divergence["snr_db"] < 40


def test_the_unmutated_package_passes(anyir_fp16):
    _assert_numeric(edgeir.verify(anyir_fp16.path, photos=1, runtime="mil"), "fp16")


def test_edgeir_run_restores_a_photo_through_the_interpreter(anyir_fp16, tmp_path, capsys):
    from PIL import Image

    from edgeir.cli import main

    photo = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(0).random((80, 70, 3)) * 255).astype(np.uint8)).save(photo)
    if __import__("platform").system() == "Darwin":
        pytest.skip("Core ML runs the package on macOS")
    assert main(["run", str(anyir_fp16.path), str(photo), "-o", str(tmp_path / "out.png")]) == 0
    assert Image.open(tmp_path / "out.png").size == (70, 80)
    err = capsys.readouterr().err
    assert err.count("MIL interpreter") == 1
