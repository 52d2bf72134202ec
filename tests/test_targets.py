"""Target mechanics on a toy two-program recipe: multi-method artifacts, backends, runtimes."""

import numpy as np
import pytest
import torch
from torch import nn

from edgeir.bundle import Bundle
from edgeir.discovery import targets
from edgeir.recipe import DynamicSize, ExportRecipe, Program, TensorSpec, TileSpec
from edgeir.target import Availability, ExportOptions

SHAPE = (1, 3, 16, 16)


def _toy_recipe() -> ExportRecipe:
    torch.manual_seed(0)
    first = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 1)).eval()
    second = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Sigmoid()).eval()
    programs = tuple(
        Program(name, module, (TensorSpec("image", SHAPE),), (TensorSpec("restored", SHAPE),), DynamicSize(8, 64, 8))
        for name, module in (("exit_1", first), ("exit_2", second))
    )
    return ExportRecipe(programs, TileSpec((16, 16), 4, 8))


def _export(tmp_path, target_name, backend=None, quant="fp32"):
    target = targets().get(target_name)
    recipe = _toy_recipe()
    result = target.export(recipe, ExportOptions(backend or target.default_backend, quant), tmp_path)
    bundle = Bundle(tmp_path, {"recipe": recipe.to_json(), "target_details": result.to_json()})
    return target, recipe, result, bundle


def _assert_runs_like_eager(target, recipe, bundle, shape=SHAPE):
    runner = target.runtime(bundle)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    for program in recipe.programs:
        got = runner.run(program.name, [x])[0]
        with torch.no_grad():
            expected = program.module(torch.from_numpy(x)).numpy()
        assert np.abs(got - expected).max() < 1e-5, program.name


@pytest.mark.target_executorch
@pytest.mark.parametrize("backend", ["xnnpack", "portable"])
def test_executorch_puts_every_program_in_one_pte(tmp_path, backend):
    target, recipe, result, bundle = _export(tmp_path, "executorch", backend)
    assert result.files == ["model.pte"]
    assert target.inspect(bundle)["methods"] == ["exit_1", "exit_2"]
    delegation = result.delegation["exit_1"]
    if backend == "xnnpack":
        assert delegation["delegate_subgraphs"] == 1 and delegation["non_delegated_nodes"] == 0
    else:
        assert delegation["delegate_subgraphs"] == 0 and delegation["non_delegated_nodes"] > 0
    _assert_runs_like_eager(target, recipe, bundle)


@pytest.mark.target_onnx
def test_onnx_writes_one_model_per_program_with_dynamic_size(tmp_path):
    target, recipe, result, bundle = _export(tmp_path, "onnx")
    assert result.files == ["exit_1.onnx", "exit_2.onnx"]
    _assert_runs_like_eager(target, recipe, bundle)
    _assert_runs_like_eager(target, recipe, bundle, shape=(1, 3, 24, 40))


@pytest.mark.target_coreml
def test_coreml_multifunction_package(tmp_path):
    target, recipe, result, bundle = _export(tmp_path, "coreml", quant="fp16")
    assert result.files == ["model.mlpackage"]
    structure = target.inspect(bundle)
    assert set(structure["functions"]) == {"exit_1", "exit_2"}
    assert structure["inputs"] == {"image": list(SHAPE)}
    for function in structure["functions"].values():
        assert function["op_counts"].get("conv", 0) >= 1
    timing = target.profile_runner(bundle, 1)
    if isinstance(timing, Availability):  # not on macOS: edgeir-mil gives numbers, not Core ML's speed
        assert "macOS" in timing.reason
        assert not isinstance(target.runtime(bundle), Availability)  # ... but the package runs through edgeir-mil
