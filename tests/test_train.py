"""The fine-tuning loop: loss goes down, checkpoints resume exactly, gloo data-parallel, GraphModules."""

import socket

import numpy as np
import pytest
import torch
from torch import nn

import edgeir
from edgeir.data.datasets import TrainingPairs, evaluation_pairs, load_images
from edgeir.errors import CheckpointError, UsageError
from edgeir.training.loop import CharbonnierObjective, fine_tune, load_training_state, lr_factor


@pytest.fixture(scope="module")
def images():
    return load_images(None)


def _small():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_schedule_warms_up_then_decays():
    assert lr_factor(0, 100, 10) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10) == pytest.approx(1.0)
    assert lr_factor(10, 100, 10) == pytest.approx(1.0)
    assert lr_factor(99, 100, 10) < 0.02


def test_a_few_steps_on_tiny_anyir_reduce_the_loss(images):
    model = edgeir.build_model("anyir", variant="tiny", task="denoise25", weights="random")
    data = TrainingPairs("denoise25", source=images, crop=32, batch=2, seed=0)
    pairs = evaluation_pairs("denoise25", source=images, crop=32, count=2)
    report = fine_tune(model, None, data, steps=12, lr=2e-3, warmup=2, log_every=1, eval_pairs=pairs)
    losses = [loss for _, loss in report.losses]
    assert len(losses) == 12
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses
    assert report.final_eval is not None and report.evals[-1][0] == 12
    assert set(report.final_eval.exits) == {"output"} and "ssim" in report.final_eval.exits["output"]
    assert report.final_eval.input_psnr_db is not None
    assert report.images_per_second > 0 and not model.training


class _Interrupted(TrainingPairs):
    """Training data whose batch ``at`` raises, as Ctrl-C would in the middle of a run."""

    at = 3

    def batch(self, index):
        if index == self.at:
            raise KeyboardInterrupt
        return super().batch(index)


def test_resume_after_an_interruption_matches_an_uninterrupted_run(images, tmp_path):
    kwargs = dict(source=images, crop=16, batch=2, seed=3)
    straight = _small()
    fine_tune(straight, None, TrainingPairs("denoise25", **kwargs), steps=6, lr=1e-3, warmup=2, log_every=1)
    state = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        fine_tune(_small(), None, _Interrupted("denoise25", **kwargs), steps=6, lr=1e-3, warmup=2, log_every=1,
                  checkpoint=state, checkpoint_every=3)
    assert load_training_state(state)["step"] == 3
    resumed = _small()
    report = fine_tune(resumed, None, TrainingPairs("denoise25", **kwargs), steps=6, lr=1e-3, warmup=2,
                       log_every=1, checkpoint=state, resume=True, output=tmp_path / "w.safetensors")
    assert report.start_step == 3 and report.steps == 6 and [s for s, _ in report.losses] == [1, 2, 3, 4, 5, 6]
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=1e-6)
    assert load_training_state(state)["step"] == 6
    from safetensors.torch import load_file

    assert set(load_file(str(tmp_path / "w.safetensors"))) == set(resumed.state_dict())


def test_bad_resume_and_settings_are_clear(tmp_path, images):
    data = TrainingPairs("denoise25", source=images, crop=16, batch=1)
    with pytest.raises(UsageError, match="steps must be positive"):
        fine_tune(_small(), None, data, steps=0)
    with pytest.raises(CheckpointError, match="does not exist"):
        fine_tune(_small(), None, data, steps=2, resume=tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an edgeir training state"):
        load_training_state(tmp_path / "other.pt")


def test_gradients_are_averaged_under_a_gloo_process_group(images):
    import torch.distributed as dist

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        data = TrainingPairs("denoise25", source=images, crop=16, batch=2, seed=1)
        with_group = _small()
        report = fine_tune(with_group, None, data, steps=3, lr=1e-3, warmup=1)
        assert report.world_size == 1
    finally:
        dist.destroy_process_group()
    alone = _small()
    fine_tune(alone, None, data, steps=3, lr=1e-3, warmup=1)
    for key, value in alone.state_dict().items():
        torch.testing.assert_close(with_group.state_dict()[key], value)


def test_an_exported_graph_module_trains(images):
    model = _small()
    graph = torch.export.export(model, (torch.rand(1, 3, 16, 16),)).module()
    before = _state(graph)
    data = TrainingPairs("denoise25", source=images, crop=16, batch=1, seed=2)
    pairs = evaluation_pairs("denoise25", source=images, crop=16, count=1)
    report = fine_tune(graph, CharbonnierObjective(graph), data, steps=2, lr=1e-3, eval_pairs=pairs)
    assert report.final_eval is not None
    assert any(not torch.equal(before[k], v) for k, v in graph.state_dict().items())


class _TwoExits(nn.Module):
    """A model with the multi-exit protocol: ``forward_exits`` gives every exit, cheapest first."""

    def __init__(self):
        super().__init__()
        self.early = nn.Conv2d(3, 3, 1)
        self.late = nn.Conv2d(3, 3, 3, padding=1)

    def forward_exits(self, x):
        early = self.early(x)
        return {"exit1": early, "exit2": self.late(early)}

    def forward(self, x):
        return self.forward_exits(x)["exit2"]


def test_evaluation_reports_every_exit_of_a_multi_exit_model(images):
    from edgeir.evaluation.accuracy import evaluate

    pairs = evaluation_pairs("denoise25", source=images, crop=16, count=2)
    result = evaluate(_TwoExits(), pairs)
    assert list(result.exits) == ["exit1", "exit2"]
    assert result.psnr_db == result.exits["exit2"]["psnr_db"]
    assert all("exit1" in row and "exit2" in row for row in result.images)
    identity = evaluate(lambda x: x, pairs)  # a numpy callable, as an artifact runtime is
    assert identity.exits["output"]["psnr_db"] == pytest.approx(identity.input_psnr_db)
