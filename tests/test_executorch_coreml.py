"""ExecuTorch with the Core ML delegate (--backend coreml): a .pte this host writes, and verifies through edgeir-mil
when each method is one Core ML delegate call (the payload is then what the method computes)."""

from __future__ import annotations

import numpy as np
import pytest

import edgeir
from edgeir.discovery import targets
from edgeir.errors import UsageError
from edgeir.target import Availability

pytest.importorskip("executorch")
pytest.importorskip("coremltools")

SIZE = (32, 32)


@pytest.fixture(scope="session")
def coreml_pte(tmp_path_factory):
    """AnyIR tiny at 32x32 through the Core ML delegate, one bundle per scheme, exported once each."""
    out = tmp_path_factory.mktemp("executorch-coreml")
    cache = {}

    def get(quant):
        if quant not in cache:
            cache[quant] = edgeir.export("anyir", "executorch", backend="coreml", variant="tiny", task="denoise25",
                                         quant=quant, input_size=SIZE, weights="random", output=out)
        return cache[quant]

    return get


@pytest.mark.target_executorch
def test_fp32_pte_holds_a_coreml_delegate(coreml_pte):
    bundle = coreml_pte("fp32")
    target = targets().get("executorch")
    assert bundle.path.name == "anyir-tiny-denoise25-executorch-coreml-fp32"
    details = bundle.manifest["target_details"]
    assert details["delegates"] == ["CoreMLBackend"]
    assert details["coreml"] == {"minimum_deployment_target": "iOS17", "compute_precision": "float32"}
    delegation = details["delegation"]["forward"]
    assert delegation["delegate_subgraphs"] >= 1 and delegation["coverage"] > 0.9
    structure = target.inspect(bundle)  # read back from the .pte
    assert structure["methods"] == ["forward"] and structure["delegates"] == ["CoreMLBackend"]
    assert structure["coreml_delegates"]["forward"]["op_counts"].get("conv", 0) >= 1
    from edgeir.targets.executorch.runtime import _has_backend

    if not _has_backend("CoreMLBackend"):  # every non-Apple host: the payload runs through edgeir-mil
        timing = target.profile_runner(bundle, 1)
        assert isinstance(timing, Availability) and "Apple" in timing.reason
        check = bundle.manifest["export_check"]
        assert check["status"] == "passed" and check["runtime"].startswith("edgeir-mil")
        report = edgeir.verify(bundle.path, photos=1)
        assert report.status == "passed" and report.data["artifact_runtime"].startswith("edgeir-mil")
        assert "delegate call" in report.data["artifact_runtime_note"]
        assert min(p["min_psnr_db"] for p in report.data["programs"].values()) >= 60


@pytest.mark.target_executorch
def test_a_pte_with_operators_outside_the_delegate_says_why_it_is_not_interpreted(tmp_path):
    """Only a method that is one delegate call may stand for its payload; anything else is refused, in words."""
    from pathlib import Path

    from edgeir.targets.coreml.delegate import why_not

    pte = next(Path(edgeir.export("anyir", "executorch", backend="portable", variant="tiny", input_size=SIZE,
                                  weights="random", output=tmp_path).path).glob("*.pte"))
    assert "0 delegate call(s)" in why_not(pte) and "ExecuTorch operator" in why_not(pte)


@pytest.mark.slow  # PT2E + CoreMLQuantizer on the Core ML target is in the default run (test_quant_coreml)
@pytest.mark.target_executorch
def test_int8_goes_through_the_coreml_quantizer(coreml_pte):
    bundle = coreml_pte("int8")
    quant = bundle.manifest["quantization"]
    assert quant["engine"] == "pt2e-coreml" and quant["mode"] == "ptq"
    assert [name.rsplit(".", 1)[0] for name in quant["fakequant_files"]] == ["fakequant/forward"]
    details = bundle.manifest["target_details"]
    assert details["delegates"] == ["CoreMLBackend"] and details["coreml"]["compute_precision"] == "float16"
    ops = targets().get("executorch").inspect(bundle)["coreml_delegates"]["forward"]["op_counts"]
    assert ops.get("quantize", 0) >= 1 and ops.get("dequantize", 0) >= 1
    assert ops.get("constexpr_affine_dequantize", 0) == quant["programs"]["forward"]["quantized_layers"]["int8"]
    assert bundle.manifest["export_check"]["status"] in ("not-run", "passed")


@pytest.mark.target_executorch
def test_several_programs_share_one_multifunction_delegate(tmp_path):
    """Two methods: the Core ML delegate stores one multifunction model; inspect reads each method's function."""
    import torch
    from torch import nn

    from edgeir.bundle import Bundle
    from edgeir.recipe import ExportRecipe, Program, TensorSpec, TileSpec
    from edgeir.target import ExportOptions

    torch.manual_seed(0)
    shape = (1, 3, 16, 16)
    modules = {"exit_1": nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 1)),
               "exit_2": nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Sigmoid())}
    recipe = ExportRecipe(tuple(Program(name, module.eval(), (TensorSpec("image", shape),),
                                        (TensorSpec("restored", shape),)) for name, module in modules.items()),
                          TileSpec((16, 16), 4, 8))
    target = targets().get("executorch")
    result = target.export(recipe, ExportOptions("coreml", "fp32"), tmp_path)
    bundle = Bundle(tmp_path, {"recipe": recipe.to_json(), "target_details": result.details, "backend": "coreml"})
    structure = target.inspect(bundle)
    assert structure["methods"] == ["exit_1", "exit_2"] and structure["delegates"] == ["CoreMLBackend"]
    functions = structure["coreml_delegates"]
    assert functions["exit_1"]["op_counts"]["conv"] == 2 and functions["exit_2"]["op_counts"]["conv"] == 1
    assert "sigmoid" in functions["exit_2"]["op_counts"] and "sigmoid" not in functions["exit_1"]["op_counts"]
    if isinstance(target.profile_runner(bundle, 1), Availability):
        # No CoreMLBackend in this runtime: each method is one delegate call, so edgeir-mil runs its payload.
        runner = target.runtime(bundle)
        assert not isinstance(runner, Availability) and runner.runtime.startswith("edgeir-mil")
        x = torch.rand(shape)
        for name, module in modules.items():
            with torch.no_grad():
                expected = module(x).numpy()
            (got,) = runner.run(name, [x.numpy()])
            assert np.abs(got - expected).max() < 1e-4, name


@pytest.mark.target_executorch
def test_xnnpack_bundles_still_run_here():
    class Stub:
        manifest = {"backend": "xnnpack"}

    from edgeir.targets.executorch.export import _missing_delegate

    assert _missing_delegate(Stub()) == ""


@pytest.mark.parametrize("quant, precision", [("fp32", "FLOAT32"), ("fp16", "FLOAT16"), ("int8", "FLOAT16")])
def test_coreml_compile_specs_follow_the_scheme(quant, precision):
    import coremltools as ct
    from executorch.backends.apple.coreml.compiler import CoreMLBackend

    from edgeir.targets.executorch.export import coreml_partitioner

    specs = coreml_partitioner(quant).delegation_spec.compile_specs
    assert CoreMLBackend.model_compute_precision_from_compile_specs(specs) == getattr(ct.precision, precision)
    assert CoreMLBackend.min_deployment_target_from_compile_specs(specs) == ct.target.iOS17
    passes = CoreMLBackend.pass_pipeline_from_compile_specs(specs).passes
    assert "common::reduce_transposes" not in passes and "common::const_elimination" in passes


@pytest.mark.parametrize("backend", ["xnnpack", "portable"])
def test_fp16_needs_the_coreml_delegate(tmp_path, backend):
    with pytest.raises(UsageError, match="'fp16' is not available for target executorch.*--backend coreml"):
        edgeir.export("anyir", "executorch", backend=backend, variant="tiny", quant="fp16", output=tmp_path)
    assert not list(tmp_path.iterdir())


def test_int8_is_refused_on_portable_kernels(tmp_path):
    with pytest.raises(UsageError, match="needs the xnnpack backend .* or the coreml backend"):
        edgeir.export("anyir", "executorch", backend="portable", variant="tiny", quant="int8", output=tmp_path)
