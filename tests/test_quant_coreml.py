"""Core ML weight compression (int8-weights, w4): compressed ops in the package, smaller than float16."""

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
