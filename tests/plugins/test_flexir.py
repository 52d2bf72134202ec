"""FlexIR: per-pointer cost (Table 3), exits, export-friendly backbone, SwinIR checkpoints, adaptive
inference and the progressive self-distillation objective."""

import numpy as np
import pytest
import torch

import edgeir
from edgeir.discovery import methods
from edgeir.errors import CheckpointError
from edgeir.plugins.flexir import adaptive
from edgeir.plugins.flexir.model import cyclic_shift, freeze_attention
from edgeir.plugins.flexir.objective import ProgressiveSelfDistillation, pointer_schedule

TABLE3_PARAMS_M = {1: 2.16, 2: 4.02, 3: 5.88, 4: 7.74, 5: 9.60, 6: 11.46}
TABLE3_MACS_G = {1: 35.47, 2: 65.98, 3: 96.50, 4: 127.01, 5: 157.52, 6: 188.03}


def tiny(task="denoise25"):
    torch.manual_seed(0)
    return edgeir.build_model("flexir", variant="tiny", task=task)


def test_paper_params_per_pointer_match_table3():
    model = edgeir.build_model("flexir", variant="paper", task="denoise25")
    for p, ref in TABLE3_PARAMS_M.items():
        assert abs(model.num_params_at_pointer(p) / 1e6 - ref) / ref <= 0.02, p


@pytest.mark.slow
def test_paper_macs_per_pointer_match_table3():
    model = edgeir.build_model("flexir", variant="paper", task="denoise25")
    for p, ref in TABLE3_MACS_G.items():
        assert abs(model.macs_at_pointer(p, (128, 128), convention="paper") / 1e9 - ref) / ref <= 0.02, p
        assert model.macs_at_pointer(p, (128, 128)) > model.macs_at_pointer(p, (128, 128), convention="paper")


def test_macs_per_part_equal_whole_model_count():
    from edgeir.evaluation.macs import count_macs

    model = tiny()
    assert model.macs_at_pointer(2, (32, 32)) == count_macs(model, torch.zeros(1, 3, 32, 32))
    assert model.macs_at_pointer(1, (32, 32)) < model.macs_at_pointer(2, (32, 32))


def test_shift_by_slicing_equals_roll():
    x = torch.rand(2, 12, 8, 5)
    for s in (2, -2, 3):
        assert torch.equal(cyclic_shift(x, s), torch.roll(x, (s, s), dims=(1, 2)))


@pytest.mark.parametrize("task, scale", [("denoise25", 1), ("jpeg10", 1), ("sr2", 2), ("sr3", 3), ("sr4", 4)])
def test_every_exit_restores_the_right_shape_and_staged_run_equals_pointer(task, scale):
    model = tiny(task).eval()
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        shallow = model.stem(x)
        feature = shallow
        for k in (1, 2):
            feature = model.block(k, feature)
            staged = model.head(k, feature, shallow, x)
            direct = model(x, pointer=k)
            assert direct.shape == (1, 3, 16 * scale, 24 * scale)
            assert torch.allclose(staged, direct, atol=1e-6)
    with pytest.raises(ValueError):
        model(x, pointer=3)


def test_separable_mask_gives_swinirs_shifted_window_attention():
    from edgeir.plugins.flexir.model import WindowAttention, separable_window_masks, shifted_window_mask

    torch.manual_seed(0)
    attn, (b, h, w, c, heads, win) = WindowAttention(16, 2, 4), (2, 16, 24, 16, 2, 4)
    x = torch.randn(b * (h // win) * (w // win), win * win, c)
    bias = attn.position_bias()
    got = attn(x, bias, separable_window_masks(h, w, win, 2))
    # SwinIR: one (N, N) mask per window, added to every head's logits.
    full = shifted_window_mask(h, w, win, 2)
    q, k, v = attn.qkv(x).reshape(x.shape[0], -1, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    logits = (q * attn.scale) @ k.transpose(-2, -1) + bias
    logits = logits.reshape(b, full.shape[0], heads, win * win, win * win) + full[None, :, None]
    ref = (torch.softmax(logits, -1).reshape(x.shape[0], heads, win * win, win * win) @ v)
    ref = attn.proj(ref.transpose(1, 2).reshape(x.shape[0], win * win, c))
    assert torch.allclose(got, ref, atol=1e-6)
    plain = attn(x, bias, None)
    assert not torch.allclose(plain, ref, atol=1e-3)  # the mask matters on these windows


def test_frozen_attention_constants_keep_output_and_refuse_other_sizes():
    model = tiny().eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
        freeze_attention(model, 32, 32)
        assert torch.allclose(model(x), before, atol=1e-6)
    with pytest.raises(ValueError, match="frozen"):
        model(torch.rand(1, 3, 16, 16))


def _official_keys(model):
    """A state dict in SwinIR's official layout (names and buffers), from a FlexIR model's weights."""
    sd = {}
    for key, value in model.state_dict().items():
        if key.startswith("exits."):
            if key.startswith("exits.0."):
                sd[key[len("exits.0."):]] = value.clone() + 0.01
            continue
        key = key.replace("patch_norm.", "patch_embed.norm.").replace(".blocks.", ".residual_group.blocks.")
        sd[key] = value.clone()
        if key.endswith("attn.relative_position_bias_table"):
            sd[key.replace("relative_position_bias_table", "relative_position_index")] = torch.zeros(16, 16).long()
            if ".blocks.1." in key:
                sd[key.replace("attn.relative_position_bias_table", "attn_mask")] = torch.zeros(64, 16, 16)
    return sd


@pytest.mark.parametrize("wrapper", ["params", "params_ema", None])
def test_official_swinir_checkpoint_loads_and_initialises_every_exit(tmp_path, wrapper):
    official = _official_keys(tiny())
    path = tmp_path / "swinir.pth"
    torch.save({wrapper: official} if wrapper else official, path)
    model = tiny()
    torch.manual_seed(1)
    model.apply(lambda m: [p.data.normal_() for p in m.parameters(recurse=False)])
    methods().get("flexir").load_checkpoint(model, path)
    for k in range(model.config.groups):
        assert torch.equal(model.exits[k].conv_last.weight, official["conv_last.weight"])
        assert torch.equal(model.exits[k].norm.weight, official["norm.weight"])
    qkv = official["layers.1.residual_group.blocks.1.attn.qkv.weight"]
    assert torch.equal(model.layers[1].blocks[1].attn.qkv.weight, qkv)
    model.eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.isfinite(model(x, pointer=1)).all()


def test_checkpoint_with_wrong_keys_is_refused_naming_them(tmp_path):
    official = _official_keys(tiny())
    official["layers.0.residual_group.blocks.0.attn.qkvx.weight"] = official.pop(
        "layers.0.residual_group.blocks.0.attn.qkv.weight")
    path = tmp_path / "bad.pth"
    torch.save({"params": official}, path)
    with pytest.raises(CheckpointError, match="qkvx"):
        methods().get("flexir").load_checkpoint(tiny(), path)


def test_sharpness_score_prefers_sharp_images():
    rng = np.random.default_rng(0)
    sharp = np.kron(rng.random((8, 8)), np.ones((8, 8)))  # blocky: strong edges
    blurred = np.convolve(sharp.ravel(), np.ones(9) / 9, mode="same").reshape(sharp.shape)
    assert adaptive.sharpness_score(sharp) > adaptive.sharpness_score(blurred) > 0
    assert adaptive.sharpness_score(np.full((3, 32, 32), 0.5)) == 0.0


class CountingRunner:
    """Counts the staged programs a controller runs (to check it computes no head it does not need)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def run(self, program, inputs):
        self.calls.append(program)
        return self.inner.run(program, inputs)


def tiny_rule(model, name, size=(32, 32)):
    return adaptive.calibrate_model(model, "denoise25", size, (1, 2), rule=name)


@pytest.mark.parametrize("name", adaptive.RULES)
def test_adaptive_exits_and_macs_grow_with_the_threshold_and_stay_within_full_plus_one_head(name):
    model = tiny().eval()
    stages = adaptive.EagerStages(model)
    costs = adaptive.StageCosts.from_model(model, (32, 32))
    rule = tiny_rule(model, name)
    rng = np.random.default_rng(0)
    image = np.clip(np.kron(rng.random((1, 3, 8, 8)), np.ones((4, 4))) + 0.1 * rng.standard_normal((1, 3, 32, 32)),
                    0, 1).astype(np.float32)
    image = np.concatenate([np.concatenate([image, 0.5 + 0.02 * image], 3)] * 2, 2)  # busy and flat regions
    bound = costs.regular(2) + (costs.head if name == "ladder" else 0)
    previous_exits, previous_macs = None, -1
    for threshold in (0.0, 0.5, 0.8, 1.0, 1.1, 1.5, 2.0, 1e9):
        counting = CountingRunner(stages)
        result = adaptive.adaptive_inference(counting, image, rule=rule, threshold=threshold, costs=costs)
        assert len(result.region_macs) == 4 and sum(result.region_macs) == result.macs
        assert max(result.region_macs) <= bound
        assert counting.calls.count("block_1") == 4 and counting.calls.count("block_2") == result.exits.count(2)
        heads = sum(c.startswith("head_") for c in counting.calls)
        assert heads == 4 + (result.exits.count(2) if name == "ladder" else 0)  # no head the rule did not need
        if previous_exits is not None:
            assert all(b >= a for a, b in zip(previous_exits, result.exits, strict=True))
            assert result.macs >= previous_macs
        previous_exits, previous_macs = result.exits, result.macs
        crops, _ = adaptive.split(image, 4)
        outs, _ = adaptive.split(result.image, 4)
        for crop, out, k in zip(crops, outs, result.exits, strict=True):
            with torch.no_grad():
                assert np.allclose(out, model(torch.from_numpy(crop), pointer=k).numpy(), atol=1e-5)
    low = adaptive.adaptive_inference(stages, image, rule=rule, threshold=0.0, costs=costs)
    assert low.exits == [1, 1, 1, 1] and low.macs == 4 * costs.regular(1)
    high = adaptive.adaptive_inference(stages, image, rule=rule, threshold=1e9, costs=costs)
    assert high.exits == [2, 2, 2, 2] and high.macs == 4 * bound
    assert np.allclose(adaptive.regular_inference(stages, image, pointer=2), high.image, atol=1e-5)


def test_stopping_rule_is_checked_and_round_trips_through_json():
    rule = adaptive.StoppingRule("input", (1, 2, 4), (2.0, 1.0), {"regions": 3})
    assert [rule.exit_for(s, 1.0) for s in (3.0, 1.5, 0.5)] == [1, 2, 4]
    assert [rule.exit_for(1.5, h) for h in (0.5, 1.0, 2.0)] == [1, 2, 4]  # larger h: more cautious
    assert adaptive.StoppingRule.from_json(rule.to_json()) == rule
    with pytest.raises(ValueError, match="must not increase"):
        adaptive.StoppingRule("input", (1, 2, 3), (1.0, 2.0))
    with pytest.raises(ValueError, match="needs 2 accept"):
        adaptive.StoppingRule("input", (1, 2, 3), (1.0,))
    with pytest.raises(ValueError, match="unknown stopping rule"):
        adaptive.StoppingRule("relative", (1, 2), (1.0,))


def test_calibration_spreads_the_calibration_regions_evenly_over_the_exits_at_threshold_one():
    values = list(np.random.default_rng(0).gamma(2.0, size=400))
    rule = adaptive.calibrate(values, (1, 2, 3, 4), "input")
    taken = [rule.exit_for(v, 1.0) for v in values]
    assert all(abs(taken.count(k) / len(values) - 0.25) < 0.02 for k in (1, 2, 3, 4))
    assert np.mean([rule.exit_for(v, 0.5) for v in values]) < np.mean(taken) < np.mean(
        [rule.exit_for(v, 2.0) for v in values])


def test_objective_trains_exits_with_a_frozen_teacher():
    model = tiny().train()
    objective = ProgressiveSelfDistillation(model)
    assert pointer_schedule(0, 10, 2) == 1 and pointer_schedule(9, 10, 2) == 2
    teacher_before = {k: v.clone() for k, v in objective.teacher.state_dict().items()}
    assert not any(p.requires_grad for p in objective.teacher.parameters())
    assert not any(p is q for p in objective.parameters() for q in objective.teacher.parameters())
    params = {id(p): p for p in list(model.parameters()) + list(objective.parameters())}
    optimiser = torch.optim.Adam(params.values(), lr=2e-3)
    torch.manual_seed(0)
    clean = torch.rand(2, 3, 16, 16)
    degraded = clean + 0.1 * torch.randn_like(clean)
    losses = []
    for _ in range(8):
        loss, logs = objective(degraded, clean, 8, 8)  # pointer N: every exit trains
        assert torch.isfinite(loss) and logs["pointer"] == 2.0
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    assert all(torch.equal(v, objective.teacher.state_dict()[k]) for k, v in teacher_before.items())
    assert any(p.grad is not None for p in objective.scorer.parameters())


def test_distillation_term_does_not_grow_with_the_features_scale():
    """L_CA is relative to the teacher feature's magnitude, so alpha weighs it as Eq. 5 means at any scale
    (without that, SwinIR-sized features made the distillation 97% of the loss)."""
    torch.manual_seed(0)
    clean = torch.rand(2, 3, 16, 16)
    degraded = clean + 0.1 * torch.randn_like(clean)
    objective = ProgressiveSelfDistillation(tiny().eval())
    torch.manual_seed(1)
    _, logs = objective(degraded, clean, 8, 8)

    def scaled(forward, features_first):
        def run(*args):
            a, b = forward(*args)
            return ([8.0 * f for f in a], b) if features_first else (a, [8.0 * f for f in b])
        return run

    objective.model.forward_all = scaled(objective.model.forward_all, False)
    objective.teacher.forward_features = scaled(objective.teacher.forward_features, True)
    torch.manual_seed(1)
    _, big = objective(degraded, clean, 8, 8)
    for j in (1, 2):
        assert 0 < logs[f"distill_{j}"] < 1.5
        assert big[f"distill_{j}"] < 2 * logs[f"distill_{j}"]  # 8x without the teacher's scale as denominator


def test_objective_state_carries_the_teacher_so_a_resumed_run_distils_from_it():
    teacher = tiny()
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(0.01)
    student = tiny()
    objective = ProgressiveSelfDistillation(student, teacher=teacher)
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in objective.teacher.state_dict().items())
    state = objective.state_dict()
    rebuilt = ProgressiveSelfDistillation(tiny())  # what a resume builds: its teacher is the new model
    assert not all(torch.equal(v, teacher.state_dict()[k]) for k, v in rebuilt.teacher.state_dict().items())
    rebuilt.load_state_dict(state, strict=True)
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in rebuilt.teacher.state_dict().items())


def test_exits_option_is_rejected_by_a_method_without_exits(tmp_path):
    from edgeir.errors import UsageError

    with pytest.raises(UsageError, match="no early exits"):
        edgeir.export("anyir", "onnx", variant="tiny", output=tmp_path, exits="all")


def test_exits_option_lists_exit_and_staged_programs_with_costs():
    from edgeir.recipe import RecipeOptions

    model = tiny()
    recipe = methods().get("flexir").recipe(model, RecipeOptions("tiny", "denoise25", exits="all"))
    names = [p.name for p in recipe.programs]
    assert names == ["exit_1", "exit_2", "stem", "block_1", "block_2", "head_1", "head_2"]
    assert recipe.program("exit_1").metadata["params"] == model.num_params_at_pointer(1)
    with pytest.raises(edgeir.errors.UsageError):
        methods().get("flexir").recipe(model, RecipeOptions("tiny", "denoise25", exits="1,7"))
    default = methods().get("flexir").recipe(model, RecipeOptions("tiny", "denoise25"))
    assert [p.name for p in default.programs] == ["forward"]
    recorded = recipe.program("stem").metadata["stopping_rule"]
    assert adaptive.StoppingRule.from_json(recorded) == tiny_rule(model, adaptive.DEFAULT_RULE)
    manifest = {"recipe": {"programs": [p.to_json() for p in recipe.programs]}}
    assert adaptive.bundle_rule(manifest).exits == (1, 2)


@pytest.mark.slow
def test_executorch_staged_program_takes_the_same_exits_as_the_eager_controller(tmp_path):
    from edgeir.data.photos import builtin_photos, degrade, fit_to
    from edgeir.discovery import targets
    from edgeir.weights.build import build_model_with_weights

    bundle = edgeir.export("flexir", "executorch", variant="tiny", output=tmp_path, exits="all", weights="random")
    runner = targets().get("executorch").runtime(bundle)
    model, _ = build_model_with_weights("flexir", "tiny", "denoise25", "random", 0)
    eager = adaptive.EagerStages(model)
    costs = adaptive.StageCosts.from_manifest(bundle.manifest)
    assert costs == adaptive.StageCosts.from_model(model, (32, 32))
    recorded = adaptive.bundle_rule(bundle.manifest)
    assert recorded == tiny_rule(model, adaptive.DEFAULT_RULE)
    taken = {name: [] for name in adaptive.RULES}
    for index, (_, photo) in enumerate(builtin_photos()):
        noisy, _ = degrade(fit_to(photo, 64, 64), "denoise25", index)
        image = np.ascontiguousarray(noisy.transpose(2, 0, 1)[None], dtype=np.float32)
        for name in adaptive.RULES:  # the ladder's decision reads the artifact's own exit-1 output
            rule = recorded if name == recorded.name else tiny_rule(model, name)
            for threshold in (0.5, 0.8, 0.9, 1.0, 1.05, 1.1, 1.15, 1.5, 2.0):
                on_artifact = adaptive.adaptive_inference(runner, image, rule=rule, threshold=threshold, costs=costs)
                on_eager = adaptive.adaptive_inference(eager, image, rule=rule, threshold=threshold, costs=costs)
                assert on_artifact.exits == on_eager.exits
                assert on_artifact.region_macs == on_eager.region_macs
                assert np.abs(on_artifact.image - on_eager.image).max() < 1e-4
                taken[name] += on_artifact.exits
    assert all(set(exits) == {1, 2} for exits in taken.values())  # the decisions themselves were compared


@pytest.fixture(scope="session")
def onnx_exits_bundle(tmp_path_factory):
    return edgeir.export("flexir", "onnx", variant="tiny", output=tmp_path_factory.mktemp("exits"), exits="all",
                         weights="random")


def test_verify_records_every_exits_figures_in_verify_json(onnx_exits_bundle):
    import json

    from edgeir.bundle import Bundle

    edgeir.verify(onnx_exits_bundle.path, photos=1)
    data = json.loads((onnx_exits_bundle.path / "verify.json").read_text())
    verified = {e["program"]: e for e in data["exits"]}
    assert set(verified) == {"exit_1", "exit_2"}
    for figures in verified.values():
        assert figures["artifact_vs_reference_db"] > 40 and figures["photos"] == 1
        assert figures["psnr_db"] is None  # random weights: no restoration PSNR to claim
    assert not Bundle.open(onnx_exits_bundle.path).check_integrity()  # verify left the sealed manifest alone


def test_run_adaptive_picks_exits_per_tile_and_reports_compute(onnx_exits_bundle, tmp_path, capsys):
    import json

    from edgeir.cli import main
    from edgeir.data.imageio import load_image, write_image
    from edgeir.data.photos import builtin_photos

    photo = tmp_path / "photo.png"
    write_image(photo, builtin_photos(1)[0][1][:64, :80])
    bundle = str(onnx_exits_bundle.path)
    assert main(["run", bundle, str(photo), "-o", str(tmp_path / "deep.png"), "--pointer", "2"]) == 0
    assert main(["run", bundle, str(photo), "-o", str(tmp_path / "ada.png"), "--adaptive", "1e9",
                 "--report", str(tmp_path / "r.json")]) == 0
    assert "mean exit 2.00" in capsys.readouterr().out
    deep, ada = load_image(tmp_path / "deep.png").rgb, load_image(tmp_path / "ada.png").rgb
    assert np.abs(deep.astype(float) - ada.astype(float)).max() <= 1  # every tile ran to the last exit
    report = json.loads((tmp_path / "r.json").read_text())
    (summary,) = report["photos"].values()
    assert set(summary["exits"]) == {2} and summary["macs"] == summary["full_macs"]  # no head but the one taken
    assert summary["macs_fraction"] == 1.0 and len(summary["region_macs"]) == summary["regions"]
    assert main(["run", bundle, str(photo), "-o", str(tmp_path / "shallow.png"), "--adaptive", "0",
                 "--report", str(tmp_path / "r1.json")]) == 0
    (shallow,) = json.loads((tmp_path / "r1.json").read_text())["photos"].values()
    assert set(shallow["exits"]) == {1} and shallow["macs"] < shallow["full_macs"]
    assert shallow["regions"] == summary["regions"] > 1


def test_report_draws_the_adaptive_curve_of_an_exits_bundle(onnx_exits_bundle, tmp_path):
    from edgeir.report.build import ADAPTIVE_THRESHOLDS, adaptive_curves, collect, report

    (curve,), notes = adaptive_curves(collect(onnx_exits_bundle.path.parent), photos=1)
    assert not notes and curve.thresholds == ADAPTIVE_THRESHOLDS
    assert all(b >= a for a, b in zip(curve.compute, curve.compute[1:], strict=False)) and curve.compute[-1] <= 1.0
    assert curve.compute[0] < 1.0 and curve.full_db is not None
    written = report(onnx_exits_bundle.path.parent, output=tmp_path, crop=False)
    assert tmp_path / "adaptive-tradeoff.png" in written.pngs
    assert not any("does not exist" in n for n in written.notes)


def test_adaptive_needs_the_staged_programs_of_an_exits_bundle():
    from edgeir.plugins.flexir.adaptive import staged_exits

    with pytest.raises(ValueError, match="export it with --exits"):
        staged_exits({"recipe": {"programs": [{"name": "forward"}]}})
    with pytest.raises(ValueError, match="no calibrated stopping rule"):
        adaptive.bundle_rule({"recipe": {"programs": [{"name": n} for n in ("stem", "block_1", "head_1")]}})
    assert staged_exits({"recipe": {"programs": [{"name": n} for n in ("stem", "block_1", "block_2", "head_2")]}}) \
        == (2,)


def test_shipped_mobile_exits_rise_monotonically():
    """The shipped mobile denoise25 exits are trained apart: each beats the one before on the held-out split."""
    from edgeir.weights.shipped import read_provenance

    entry = edgeir.methods().get("flexir").shipped_weights("mobile", "denoise25")
    exits = read_provenance(entry.path)["eval"]["exits"]
    values = [exits[f"exit_{k}"]["psnr_db"] for k in range(1, 5)]
    assert all(b >= a + 0.02 for a, b in zip(values, values[1:], strict=False)), values
