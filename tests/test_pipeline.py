import pytest
import torch
from torch import nn

from edgeir.errors import StageError
from edgeir.pipeline.export import apply_rewrites
from edgeir.recipe import ExportRecipe, Program, Rewrite, TensorSpec, TileSpec

SHAPE = (1, 3, 8, 8)


def _recipe(*rewrites: Rewrite) -> ExportRecipe:
    module = nn.Conv2d(3, 3, 1).eval()
    program = Program("forward", module, (TensorSpec("image", SHAPE),), (TensorSpec("restored", SHAPE),))
    return ExportRecipe((program,), TileSpec((8, 8), 0), rewrites)


def _scaled(module: nn.Module) -> nn.Module:
    with torch.no_grad():
        module.weight.mul_(2.0)
    return module


def test_output_preserving_rewrite_that_changes_output_fails_the_rewrite_stage():
    with pytest.raises(StageError, match="stage 'rewrite'.*'double' changed the output"):
        apply_rewrites(_recipe(Rewrite("double", "scales weights", _scaled)), "xnnpack")


def test_rewrite_meant_to_change_output_is_recorded_not_rejected():
    recipe = _recipe(Rewrite("double", "scales weights", _scaled, changes_output=True))
    lowered, records = apply_rewrites(recipe, "xnnpack")
    assert records[0]["max_abs_change"] > 0
    assert lowered.programs[0].module is not recipe.programs[0].module


def test_rewrites_for_other_backends_are_skipped_and_the_input_is_untouched():
    recipe = _recipe(Rewrite("double", "scales weights", _scaled, changes_output=True, backends=("xnnpack",)))
    before = recipe.programs[0].module.weight.clone()
    _, records = apply_rewrites(recipe, "onnxruntime")
    assert records == []
    apply_rewrites(recipe, "xnnpack")
    assert torch.equal(recipe.programs[0].module.weight, before)
