"""Core ML quantization: weight compression (int8-weights, w4), smaller than float16, and static int8
(W8A8, PT2E with CoreMLQuantizer, PTQ and QAT): quantize/dequantize ops and int8 weights in the package."""

from __future__ import annotations

import pytest

import edgeir
from edgeir.errors import UsageError
from edgeir.targets.coreml import TARGET

pytest.importorskip("coremltools")


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="session")
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


def _fresh_copy(bundle, tmp_path):
    """A copy of ``bundle`` without its verify.json (tests edit or verify it without touching the shared one)."""
    import shutil

    copy = tmp_path / bundle.path.name
    shutil.copytree(bundle.path, copy)
    (copy / "verify.json").unlink(missing_ok=True)
    return copy


@pytest.mark.target_coreml
@pytest.mark.parametrize("quant, op", [("int8-weights", "constexpr_affine_dequantize"),
                                       ("w4", "constexpr_lut_to_dense")])
def test_weight_compressed_package_verifies_against_its_own_decompressed_weights(coreml_bundles, quant, op,
                                                                                 tmp_path):
    """The reference holds the package's decompressed weights: the artifact then agrees with it as an fp16
    package does with float32 (>= 40 dB), far above its agreement with the float model, which is reported as
    the compression's cost."""
    from edgeir.discovery import quant_schemes

    bundle = coreml_bundles[quant]
    report = edgeir.verify(_fresh_copy(bundle, tmp_path), photos=1, runtime="mil")
    assert report.status == "passed", report.data
    assert report.data["threshold_db"] == quant_schemes().get(quant).reference_weights_threshold_db == 40
    result = report.data["programs"]["forward"]
    own, cost = result["reference_weights"], result["compression"]
    # every compressed weight of the package went into the reference, each found by its torch name
    assert own["compressed_weights"] == own["matched_by_name"] == \
        bundle.manifest["target_details"]["compression"]["compressed_ops"][op]
    assert result["min_psnr_db"] >= 40
    assert result["min_psnr_db"] > cost["min_artifact_vs_float_db"] + 10
    assert cost["min_reference_vs_float_db"] < result["min_psnr_db"]


def test_the_reference_follows_the_packages_palette(coreml_bundles, tmp_path):
    """A palette scaled in the saved package: the reference's tensor is the edited palette's decoding (not a
    recompression of the float weights), so the artifact still agrees with it while the float model departs."""
    import torch
    from coreml_mutations import rehash, scale_palette

    from edgeir.bundle import Bundle
    from edgeir.runtime.verify import reference_program

    original = coreml_bundles["w4"]
    copy = _fresh_copy(original, tmp_path)
    const = scale_palette(copy / "model.mlpackage", 1.2, index=2)
    rehash(copy)
    edited = Bundle.open(copy)
    state = reference_program(edited.manifest, "forward").state_dict()
    before = TARGET.reference_weights(original, "forward", state)
    after = TARGET.reference_weights(edited, "forward", state)
    changed = [key for key in before.tensors if not torch.equal(before.tensors[key], after.tensors[key])]
    assert len(changed) == 1 and const.startswith("p_" + changed[0].replace(".", "_").lower())
    torch.testing.assert_close(after.tensors[changed[0]], before.tensors[changed[0]] * 1.2, rtol=1e-3, atol=0)
    report = edgeir.verify(copy, photos=1, runtime="mil")
    assert report.status == "passed" and report.data["programs"]["forward"]["min_psnr_db"] >= 40


def test_a_palette_that_is_not_the_weights_compression_fails_verify(coreml_bundles, tmp_path):
    """A palette negated in the saved package decodes to weights that are not the model's: verify refuses to
    build a reference from them and names the weight."""
    from coreml_mutations import rehash, scale_palette

    from edgeir.errors import CheckFailed

    copy = _fresh_copy(coreml_bundles["w4"], tmp_path)
    const = scale_palette(copy / "model.mlpackage", -1.0, index=2)
    rehash(copy)
    with pytest.raises(CheckFailed, match=f"`{const}` of the package is not a compression of"):
        edgeir.verify(copy, photos=1, runtime="mil")


@pytest.mark.target_coreml
@pytest.mark.parametrize("method", ["nafnet", "hiir"])
def test_weights_other_than_plain_parameters_are_mapped(method, tmp_path):
    """NAFNet: coremltools folds ``conv(x) * gamma`` into the conv weight (a const named after the ``mul``);
    Hi-IR: the export's rewrite gathers the attention bias into a non-persistent buffer that the package stores
    compressed. Every compressed weight still goes into the reference, and the package verifies against it."""
    bundle = edgeir.export(method, "coreml", variant="tiny", quant="w4", weights="random", output=tmp_path)
    report = edgeir.verify(bundle.path, photos=1, runtime="mil")
    assert report.status == "passed", report.data
    own = report.data["programs"]["forward"]["reference_weights"]
    assert own["compressed_weights"] == bundle.manifest["target_details"]["compression"]["compressed_ops"][
        "constexpr_lut_to_dense"]
    if method == "nafnet":  # the initial gamma is zero: its folded weights are all zero and substitute nothing
        assert own["matched_by_zero_scale"] >= 1
    assert report.data["programs"]["forward"]["min_psnr_db"] >= 40


@pytest.mark.target_coreml
def test_a_compressed_multifunction_package_exports_and_verifies(tmp_path):
    """DiffIR's forward + prior + restore in one package at w4: the functions are converted for iOS 18, the
    version coremltools saves multifunction packages at (at iOS 17 save_multifunction rejects the palettes)."""
    bundle = edgeir.export("diffir", "coreml", variant="tiny", quant="w4", weights="random", output=tmp_path)
    details = bundle.manifest["target_details"]
    assert details["minimum_deployment_target"] == "iOS18" and len(details["functions"]) == 3
    compressed = [facts["compressed_ops"].get("constexpr_lut_to_dense", 0) for facts in details["compression"].values()]
    assert len(compressed) == 3 and all(compressed)
    report = edgeir.verify(bundle.path, photos=1, runtime="mil")
    assert report.status == "passed", report.data
    for name in ("forward", "prior", "restore"):
        program = report.data["programs"][name]
        assert program["status"] == "passed" and program["min_psnr_db"] >= 40, (name, program)
