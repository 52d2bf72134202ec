"""int8 export: PTQ and QAT per engine, the three-way verification, and scheme x target errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgeir
from edgeir.discovery import targets
from edgeir.errors import CheckFailed, UsageError
from edgeir.target import Runner

SIZE = (32, 32)


@pytest.fixture(scope="session")
def int8_bundles(tmp_path_factory):
    """executorch PTQ, executorch QAT and onnx PTQ, onnx QAT bundles of AnyIR tiny, exported once."""
    root = tmp_path_factory.mktemp("int8")
    cache = {}

    def get(target, qat_steps):
        if (target, qat_steps) not in cache:
            cache[target, qat_steps] = edgeir.export("anyir", target, variant="tiny", task="denoise25", quant="int8",
                                                     qat_steps=qat_steps, input_size=SIZE,
                                                     output=root / f"{target}-{qat_steps}")
        return cache[target, qat_steps]

    return get


@pytest.mark.parametrize("qat_steps,target,engine", [
    (0, "executorch", "pt2e-xnnpack"), (0, "onnx", "nncf"), (2, "onnx", "nncf"),
    pytest.param(2, "executorch", "pt2e-xnnpack", marks=pytest.mark.slow),  # PT2E QAT by default: the Core ML row
])
def test_int8_export_records_engine_and_matches_fakequant(int8_bundles, target, engine, qat_steps):
    bundle = int8_bundles(target, qat_steps)
    quant = bundle.manifest["quantization"]
    assert bundle.manifest["quant"] == "int8" and quant["engine"] == engine
    assert quant["mode"] == ("qat" if qat_steps else "ptq") and quant["qat_steps"] == qat_steps
    assert quant["calibration"]["batches"] >= 1 and "training split" in quant["calibration"]["source"]
    if qat_steps:
        assert quant["programs"]["forward"]["qat"]["steps"] == qat_steps
        assert quant["programs"]["forward"]["qat"]["objective"] == "CharbonnierObjective"  # anyir declares none
    assert [f.rsplit(".", 1)[0] for f in quant["fakequant_files"]] == ["fakequant/forward"]
    check = bundle.manifest["export_check"]["programs"]["forward"]
    assert check["artifact_vs_fakequant_psnr_db"] >= 35


def test_onnx_int8_is_a_qdq_model_with_integer_weights(int8_bundles):
    import onnx

    bundle = int8_bundles("onnx", 0)
    model = onnx.load(str(bundle.path / "model.onnx"))
    ops = [node.op_type for node in model.graph.node]
    assert {"QuantizeLinear", "DequantizeLinear"} <= set(ops)
    produced_by = {out: node.op_type for node in model.graph.node for out in node.output}
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    quantized = [c for c in convs if produced_by.get(c.input[1]) == "DequantizeLinear"]
    int8 = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) > 1]
    assert bundle.manifest["target_details"]["integer_weights"]["forward"] == len(int8) >= len(quantized) > 0
    # Float convolutions are the depthwise ones larger than 3x3 (ORT's integer kernel loses there).
    weights = {i.name: i for i in model.graph.initializer}
    for conv in (c for c in convs if c not in quantized):
        group = next(a.i for a in conv.attribute if a.name == "group")
        out_channels, in_per_group, kh, kw = weights[conv.input[1]].dims
        assert group == out_channels > 1 and in_per_group == 1 and kh * kw > 9, conv.name
    assert not any(p.key.startswith("pkg.torch.onnx.") for node in model.graph.node for p in node.metadata_props)


def test_verify_compares_float_fakequant_and_artifact(int8_bundles):
    bundle = int8_bundles("executorch", 0)
    report = edgeir.verify(bundle.path, photos=2)
    three_way = report.data["programs"]["forward"]["fakequant"]
    assert three_way["status"] == "passed"
    assert {"artifact_vs_float_db", "fakequant_vs_float_db", "artifact_vs_fakequant_db"} <= set(three_way["photos"][0])
    assert "fakequant" in json.loads((bundle.path / "verify.json").read_text())["programs"]["forward"]
    assert report.data["programs"]["forward"]["min_psnr_db"] > 0  # the artifact-vs-float key gates read


def test_artifact_that_disagrees_with_its_fakequant_model_is_an_error(int8_bundles, monkeypatch):
    """An artifact computing something else (as the PT2E lowering bug in NOTES.md did) fails verify."""
    bundle = int8_bundles("onnx", 0)
    target = targets().get("onnx")
    real_runtime = target.runtime

    class Wrong(Runner):
        runtime = "onnxruntime"

        def __init__(self, runner):
            self.runner = runner

        def run(self, program, inputs):
            return [np.clip(o + 0.2 * np.sin(40 * o), 0, 1) for o in self.runner.run(program, inputs)]

    monkeypatch.setattr(type(target), "runtime", lambda self, b: Wrong(real_runtime(b)))
    with pytest.raises(CheckFailed, match="fake-quant"):
        edgeir.verify(bundle.path, photos=1)
    data = json.loads((bundle.path / "verify.json").read_text())
    assert data["status"] == "failed" and data["programs"]["forward"]["fakequant"]["status"] == "failed"


@pytest.mark.parametrize("target,kwargs,message", [
    ("executorch", {"quant": "fp16"}, "not available for target executorch"),
    ("onnx", {"quant": "fp16"}, "works with: coreml"),
    ("executorch", {"quant": "int8", "backend": "portable"}, "needs the xnnpack backend"),
    ("onnx", {"quant": "fp32", "qat_steps": 3}, "qat-steps applies to trainable"),
    ("onnx", {"quant": "int8", "qat_steps": -1}, "must be 0"),
    ("onnx", {"quant": "int4"}, "unknown"),
])
def test_bad_scheme_target_combinations_are_clear_errors(tmp_path, target, kwargs, message):
    with pytest.raises(UsageError, match=message):
        edgeir.export("anyir", target, variant="tiny", output=tmp_path, **kwargs)
    assert not list(tmp_path.iterdir())


def test_quant_report_ranks_module_groups_of_a_wrapped_program():
    """The sensitivity report quantizes all but one group at a time; FlexIR's program wraps the model."""
    from edgeir.quantization.sensitivity import module_groups, sensitivity

    model = edgeir.build_model("flexir", variant="tiny", weights="random")
    from edgeir.plugins.flexir.programs import ExitProgram

    assert module_groups(ExitProgram(model, 2)) == [f"model.{name}" for name, child in model.named_children()
                                                    if any(True for _ in child.parameters())]
    report = sensitivity("flexir", "executorch", variant="tiny", weights="random", input_size=SIZE, progress=False)
    assert report.program == "forward" and report.engine == "pt2e-xnnpack"
    assert {layer.group for layer in report.layers} == set(module_groups(ExitProgram(model, 2)))
    assert report.all_quantized_psnr_db > 20


def test_quant_report_groups_name_modules_and_unknown_names_are_listed():
    """``--groups``: a bare name matches every submodule so called; a name matching none is an error."""
    from edgeir.plugins.flexir.programs import ExitProgram
    from edgeir.quantization.sensitivity import named_groups

    program = ExitProgram(edgeir.build_model("flexir", variant="tiny", weights="random"), 2)
    assert named_groups(program, ["conv", "layers.0+conv_first"]) == ["conv", "layers.0+conv_first"]
    with pytest.raises(UsageError, match=r"no module named convv.*conv_first"):
        named_groups(program, ["layers.1", "layers.0+convv"])


@pytest.mark.parametrize("vs_fakequant,vs_float,fakequant_vs_float,agrees", [
    (40.0, 30.0, 30.1, True),    # within tolerance of its fake-quant model
    (34.2, 36.0, 36.1, True),    # AnyIR paper on Core ML: two faithful simulations drift apart, not from float
    (34.0, 35.4, 36.0, False),   # further from float than the fake-quant model by more than the margin
    (14.0, 13.5, 45.0, False),   # NOTES.md's PT2E lowering bug
])
def test_fakequant_agreement_rule(vs_fakequant, vs_float, fakequant_vs_float, agrees):
    from edgeir.quantization.stage import fakequant_agrees

    ok, how = fakequant_agrees(vs_fakequant, vs_float, fakequant_vs_float, 35.0)
    assert ok is agrees and how
