"""Hi-IR plugin: L2 mixes information across L1 windows, bias freezing, shapes and parameter counts."""

from __future__ import annotations

import pytest
import torch

from edgeir import build_model
from edgeir.plugins.hiir.model import HiIRLayer, freeze_biases, swap_grid


def _layer(use_l2: bool) -> HiIRLayer:
    torch.manual_seed(0)
    return HiIRLayer(dim=16, heads=2, window=4, grid=2, mlp_ratio=2.0, use_l2=use_l2).eval()


def _window_b_change(layer: HiIRLayer) -> float:
    """Max change inside L1 window B (rows 0-3, cols 4-7) after changing one pixel of window A (rows/cols 0-3).

    L1 changes all of window A and the L3 3x3 conv reaches one pixel past it (column 4), so only
    columns 5-7 of window B are checked: they can change only through L2, whose group holds (1, 1) and (1, 5).
    """
    torch.manual_seed(1)
    x = torch.randn(1, 16, 16, 16)
    y = x.clone()
    y[0, 1, 1] += 5.0 * torch.randn(16)  # not a constant shift, which LayerNorm would remove
    with torch.no_grad():
        diff = (layer(x) - layer(y)).abs()
    return float(diff[0, 0:4, 5:8].max())


def test_l2_mixes_across_l1_windows() -> None:
    with_l2 = _layer(True)
    without = _layer(False)
    without.load_state_dict(with_l2.state_dict())
    assert _window_b_change(with_l2) > 1e-4
    assert _window_b_change(without) == 0.0


def test_swap_grid_is_inverted() -> None:
    x = torch.randn(2, 16, 24, 3)
    assert torch.equal(swap_grid(swap_grid(x, 2, 4), 4, 2), x)


def test_frozen_bias_keeps_output() -> None:
    model = build_model("hiir", variant="tiny", task="sr2").eval()
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        ref = model(x)
        out = freeze_biases(model)(x)
    assert torch.allclose(ref, out, atol=1e-6)


@pytest.mark.parametrize("task,scale", [("sr3", 3), ("denoise25", 1)])
def test_shapes_and_bad_size(task: str, scale: int) -> None:
    model = build_model("hiir", variant="tiny", task=task).eval()
    m = model.size_multiple
    with torch.no_grad():
        assert model(torch.rand(1, 3, m, 2 * m)).shape == (1, 3, m * scale, 2 * m * scale)
    with pytest.raises(ValueError, match="multiples"):
        model(torch.rand(1, 3, m + 1, m))


@pytest.mark.slow
@pytest.mark.parametrize("variant,task,paper", [("paper", "sr2", 14.68e6), ("paper", "sr3", 14.87e6),
                                                ("paper", "sr4", 14.83e6), ("large", "sr2", 39.07e6),
                                                ("paper", "denoise50", 22.33e6)])
def test_paper_parameter_counts(variant: str, task: str, paper: float) -> None:
    n = sum(p.numel() for p in build_model("hiir", variant=variant, task=task).parameters())
    assert abs(n - paper) / paper <= 0.03
