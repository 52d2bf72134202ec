"""PT2E engines (pt2e-xnnpack, pt2e-coreml): modules a method keeps in float stay float."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgeir.recipe import Program, QuantHints, TensorSpec

pytest.importorskip("executorch")
pytest.importorskip("torchao")

SHAPE = (1, 3, 16, 16)
KEPT_CHANNELS = 5  # the kept conv is the only one with 5 output channels


class Restorer(nn.Module):
    """A method model with a ``condition`` branch its recipe keeps in float."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.condition = nn.Sequential(nn.Conv2d(8, KEPT_CHANNELS, 1), nn.ReLU())
        self.tail = nn.Conv2d(8 + KEPT_CHANNELS, 3, 3, padding=1)

    def forward(self, x):
        features = self.head(x)
        return x + self.tail(torch.cat([features, self.condition(features)], dim=1))


class WrappingProgram(nn.Module):
    """A program that holds the model as ``self.model`` (as DiffIR's PriorProgram does)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)


@pytest.mark.parametrize("engine_name", ["XNNPACK_ENGINE", "COREML_ENGINE"])
def test_keep_float_keeps_named_modules_float(engine_name):
    from edgeir.quant import pt2e

    engine = getattr(pt2e, engine_name)
    ok, reason = engine.availability()
    if not ok:
        pytest.skip(reason)
    torch.manual_seed(0)
    program = Program("forward", WrappingProgram(Restorer()).eval(), (TensorSpec("image", SHAPE),),
                      (TensorSpec("restored", SHAPE),))
    calibration = [(torch.rand(2, *SHAPE[1:]),) for _ in range(2)]
    result = engine.quantize(program, "int8", calibration, QuantHints(keep_float=("condition",)))

    graph = result.export_module.inner.graph
    layers = [n for n in graph.nodes if n.op == "call_function" and n.target == torch.ops.aten.conv2d.default]
    float_layers = [n for n in layers if not pt2e.is_dequantized(n.args[1])]
    assert [n.args[1].meta["val"].shape[0] for n in float_layers] == [KEPT_CHANNELS]
    assert "dequantize_per_channel" not in str(float_layers[0].args[1].target)
    assert len(layers) == 3 and all("dequantize_per_channel" in str(n.args[1].target)
                                    for n in layers if n not in float_layers)
    assert result.details["quantized_layers"] == {"int8": 2, "float": 1}
    assert result.details["kept_float"] == ["condition"]
    assert result.details["fakequant_vs_float_psnr_db"] > 20
