"""int8 for programs with inputs besides the photo (DiffIR-shaped: a prior vector feeds the restorer).

The quantize stage fills those inputs as an app does: ``zeros``, or another program's float output
on the same photos; a composite program is left out of an integer export (QuantHints.programs).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from edgeir.errors import UsageError
from edgeir.method import IOContract
from edgeir.quantization.scheme import QuantScheme
from edgeir.quantization.stage import program_feeder, quantize_recipe, quantized_programs
from edgeir.recipe import ExportRecipe, Program, QuantHints, TensorSpec, TileSpec

SIZE = 16
IMAGE = TensorSpec("image", (1, 3, SIZE, SIZE))
VECTOR = 6


class Model(nn.Module):
    """``prior(image, noise) -> vector`` (kept float, as DiffIR's CPEN) and ``restore(image, vector) -> image``."""

    def __init__(self) -> None:
        super().__init__()
        self.condition = nn.Sequential(nn.Conv2d(3, VECTOR, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                       nn.Linear(VECTOR, VECTOR))
        self.body = nn.Conv2d(3, 8, 3, padding=1)
        self.modulation = nn.Linear(VECTOR, 8)
        self.tail = nn.Conv2d(8, 3, 3, padding=1)

    def prior(self, image, noise):
        return self.condition(image) + noise

    def restore(self, image, vector):
        features = torch.relu(self.body(image)) * (1 + self.modulation(vector)[:, :, None, None])
        return image + self.tail(features)


class Call(nn.Module):
    def __init__(self, model: Model, name: str) -> None:
        super().__init__()
        self.model, self.name = model, name

    def forward(self, image, second):
        if self.name == "forward":
            return self.model.restore(image, self.model.prior(image, second))
        return getattr(self.model, self.name)(image, second)


def recipe(model: Model, programs=("prior", "restore")) -> ExportRecipe:
    noise = TensorSpec("noise", (1, VECTOR), layout="NC", kind="vector", color_order="", source="zeros")
    vector_out = TensorSpec("vector", (1, VECTOR), layout="NC", kind="vector", color_order="")
    vector_in = TensorSpec("vector", (1, VECTOR), layout="NC", kind="vector", color_order="", source="program:prior")
    restored = TensorSpec("restored", IMAGE.shape)
    return ExportRecipe(
        programs=(Program("forward", Call(model, "forward"), (IMAGE, noise), (restored,)),
                  Program("prior", Call(model, "prior"), (IMAGE, noise), (vector_out,)),
                  Program("restore", Call(model, "restore"), (IMAGE, vector_in), (restored,))),
        tile=TileSpec(size=(SIZE, SIZE), overlap=4),
        quant=QuantHints(keep_float=("condition",), calibration_size=4, programs=programs))


SPEC = SimpleNamespace(name="toy", default_variant="tiny", objective=None, io=lambda variant, task: IOContract())
INT8 = QuantScheme(name="int8", summary="", verify_threshold_db=25.0, compute_dtype=None,
                   fakequant_tolerance_db=35.0, trainable=True)


def test_feeder_fills_zeros_and_other_programs_outputs():
    torch.manual_seed(0)
    model = Model().eval()
    built = recipe(model)
    photos = torch.rand(2, 3, SIZE, SIZE)
    image, noise = program_feeder(built.program("prior"), built)(photos)
    assert image is photos and torch.equal(noise, torch.zeros(2, VECTOR))
    image, vector = program_feeder(built.program("restore"), built)(photos)
    assert torch.allclose(vector, model.prior(photos, torch.zeros(2, VECTOR)))


def test_feeder_refuses_an_input_edgeir_cannot_fill():
    model = Model().eval()
    unfillable = TensorSpec("vector", (1, VECTOR), layout="NC", kind="vector", color_order="")  # no source
    built = ExportRecipe(programs=(Program("restore", Call(model, "restore"), (IMAGE, unfillable),
                                           (TensorSpec("restored", IMAGE.shape),)),),
                         tile=TileSpec(size=(SIZE, SIZE), overlap=4))
    with pytest.raises(UsageError, match="does not run on photos"):
        program_feeder(built.program("restore"), built)


def test_integer_export_keeps_only_the_parts_of_a_composite_program():
    built = recipe(Model())
    assert [p.name for p in quantized_programs(built).programs] == ["prior", "restore"]
    assert [p.name for p in quantized_programs(recipe(Model(), programs=None)).programs] == [
        "forward", "prior", "restore"]


@pytest.mark.parametrize("engine_module", ["pt2e", "nncf_engine"])
@pytest.mark.parametrize("qat_steps", [0, 2])
def test_programs_with_a_vector_input_quantize_and_match_their_fakequant_model(engine_module, qat_steps):
    import importlib

    engine = importlib.import_module(f"edgeir.quant.{engine_module}").ENGINE
    ok, reason = engine.availability()
    if not ok:
        pytest.skip(reason)
    torch.manual_seed(0)
    model = Model().eval()
    built = quantized_programs(recipe(model))
    result = quantize_recipe(engine, INT8, SPEC, built, "denoise25", qat_steps=qat_steps)

    restore = result.programs["restore"]
    sample = result.samples["restore"]
    assert [tuple(x.shape) for x in sample] == [IMAGE.shape, (1, VECTOR)]
    with torch.no_grad():
        floating = model.restore(*sample)
        simulated = restore.fakequant(*sample)
    # Quantized, but close to the float restorer on the filled inputs (the prior's vector).
    assert not torch.equal(simulated, floating)
    assert torch.nn.functional.mse_loss(simulated, floating) < 1e-3
    if qat_steps:
        assert restore.details["qat"]["steps"] == qat_steps


def test_nncf_quantizes_only_weighted_operations_outside_kept_modules():
    from edgeir.quant.nncf_engine import ignored_operations

    pytest.importorskip("nncf")
    built = recipe(Model().eval())
    prior, restore = built.program("prior"), built.program("restore")
    everything = ignored_operations(prior.module, prior.example_inputs(), ())
    kept = ignored_operations(prior.module, prior.example_inputs(), ("condition",))
    # The condition branch's conv and linear, by NNCF's names, are left float on top of the arithmetic.
    assert len(set(kept) - set(everything)) == 2
    assert all("conv2d" not in name and "linear" not in name for name in everything)
    assert set(ignored_operations(restore.module, restore.example_inputs(), ("condition",))) == \
        set(ignored_operations(restore.module, restore.example_inputs(), ()))

