"""Core ML quantization: weight compression (int8-weights, w4), smaller than float16, and static int8
(W8A8, PT2E with CoreMLQuantizer, PTQ and QAT): quantize/dequantize ops and int8 weights in the package."""

from __future__ import annotations

import pytest
from edgeir.targets.coreml import TARGET

import edgeir
from edgeir.errors import UsageError

pytest.importorskip("coremltools")


@pytest.fixture(scope="module")
def coreml_bundles(tmp_path_factory):
    out = tmp_path_factory.mktemp("coreml-quant")
    return {quant: edgeir.export("anyir", "coreml", variant="tiny", task="denoise25", quant=quant, output=out)
            for quant in ("fp16", "int8-weights", "w4")}


@pytest.mark.parametrize("quant, op", [("int8-weights", "constexpr_affine_dequantize"),
                                       ("w4", "constexpr_lut_to_dense")])
def test_coreml_scheme_compresses_weights(coreml_bundles, quant, op):
    bundle = coreml_bundles[quant]
    manifest = bundle.manifest
    assert manifest["quant"] == quant
    assert manifest["quantization"]["engine"] == "coremltools-optimize"
    assert manifest["quantization"]["mode"] == "weight-compression"
    facts = manifest["target_details"]["compression"]
    ops = TARGET.inspect(bundle)["functions"]["main"]["op_counts"]  # read back from the saved package
    assert ops.get(op, 0) >= 1 and ops[op] == facts["compressed_ops"][op]
    assert facts["package_bytes_after"] < facts["package_bytes_fp16"]
    assert _package_bytes(bundle) < _package_bytes(coreml_bundles["fp16"])
    assert manifest["export_check"]["status"] in ("not-run", "passed")  # not-run: Core ML needs macOS


def _package_bytes(bundle) -> int:
    return sum(f.stat().st_size for f in (bundle.path / "model.mlpackage").rglob("*") if f.is_file())


@pytest.mark.parametrize("target", ["onnx", "executorch"])
@pytest.mark.parametrize("quant", ["int8-weights", "w4"])
def test_weight_compression_schemes_are_coreml_only(tmp_path, target, quant):
    with pytest.raises(UsageError, match="coreml"):
        edgeir.export("anyir", target, variant="tiny", quant=quant, output=tmp_path)


SIZE = (32, 32)


@pytest.fixture(scope="module")
def coreml_int8(tmp_path_factory):
    """Core ML int8 bundles of AnyIR tiny at 32x32: PTQ (0 steps) and QAT (2 steps), exported once each."""
    out = tmp_path_factory.mktemp("coreml-int8")
    cache = {}

    def get(qat_steps):
        if qat_steps not in cache:
            cache[qat_steps] = edgeir.export("anyir", "coreml", variant="tiny", task="denoise25", quant="int8",
                                             qat_steps=qat_steps, input_size=SIZE, weights="random",
                                             output=out / str(qat_steps))
        return cache[qat_steps]

    return get


@pytest.mark.target_coreml
@pytest.mark.parametrize("qat_steps", [0, 2])
def test_coreml_int8_package_holds_quantized_ops(coreml_int8, qat_steps):
    bundle = coreml_int8(qat_steps)
    manifest = bundle.manifest
    assert bundle.path.name == "anyir-tiny-denoise25-coreml-int8"
    quant = manifest["quantization"]
    assert quant["engine"] == "pt2e-coreml" and quant["mode"] == ("qat" if qat_steps else "ptq")
    assert quant["qat_steps"] == qat_steps
    details = quant["programs"]["forward"]
    assert details["quantizer"] == "CoreMLQuantizer" and details["quantized_layers"]["int8"] > 0
    assert details["fakequant_vs_float_psnr_db"] > 20
    if qat_steps:
        assert details["qat"]["steps"] == qat_steps
    assert [name.rsplit(".", 1)[0] for name in quant["fakequant_files"]] == ["fakequant/forward"]
    assert all((bundle.path / name).is_file() for name in quant["fakequant_files"])
    assert manifest["target_details"]["compute_precision"] == "float16"
    ops = TARGET.inspect(bundle)["functions"]["main"]["op_counts"]  # read back from the saved package
    assert ops.get("quantize", 0) >= 1 and ops.get("dequantize", 0) >= 1
    assert ops.get("constexpr_affine_dequantize", 0) == details["quantized_layers"]["int8"]


@pytest.mark.target_coreml
def test_coreml_int8_verifies_numerically_off_macos(coreml_int8):
    """On Linux the int8 package runs through edgeir-mil: numbers, and the fake-quant comparison."""
    bundle = coreml_int8(0)
    report = edgeir.verify(bundle.path, photos=1, runtime="mil")
    assert report.status == "passed" and report.data["artifact_runtime"].startswith("edgeir-mil")
    assert "quantize" in report.data["structure"]["functions"]["main"]["op_counts"]
    assert report.data["programs"]["forward"]["fakequant"]["status"] == "passed"
