"""edgeir finetune / eval end to end on tiny AnyIR, and the shipped default weights."""

import json

import pytest

from edgeir.cli import main
from edgeir.weights.build import build_model_with_weights


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "finetune" in out and "eval" in out
    for command in ("finetune", "eval"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "--task" in capsys.readouterr().out


def test_finetune_writes_weights_that_export_and_eval_load(tmp_path, capsys):
    out = tmp_path / "ft"
    code = main(["finetune", "anyir", "--variant", "tiny", "--task", "denoise25", "--steps", "3", "--crop", "32",
                 "--batch", "2", "--weights", "random", "-o", str(out), "--eval-count", "2", "--eval-crop", "32"])
    assert code == 0
    printed = capsys.readouterr().out
    weights = out / "anyir-tiny-denoise25.safetensors"
    assert f"wrote {weights}" in printed and "eval split" in printed
    assert (out / "anyir-tiny-denoise25.state.pt").is_file()
    record = json.loads((out / "anyir-tiny-denoise25.train.json").read_text())
    assert record["provenance"]["steps"] == 3 and record["provenance"]["start_weights"]["source"] == "random-init"
    # What 'edgeir export --weights' does: strict load through the method's checkpoint reader.
    model, info = build_model_with_weights("anyir", "tiny", "denoise25", weights)
    assert info.source == "checkpoint"
    # Resume to 5 steps from the state beside the weights.
    assert main(["finetune", "anyir", "--variant", "tiny", "--task", "denoise25", "--steps", "5", "--crop", "32",
                 "--batch", "2", "--weights", "random", "-o", str(weights), "--resume", "--eval-count", "2",
                 "--eval-crop", "32"]) == 0
    assert "steps 3->5" in capsys.readouterr().out
    report = tmp_path / "eval.json"
    assert main(["eval", "anyir", "--variant", "tiny", "--task", "denoise25", "--weights", str(weights),
                 "--count", "2", "--crop", "32", "--json", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "degraded input" in printed and "output: PSNR" in printed
    data = json.loads(report.read_text())
    assert data["pairs"] == 2 and data["exits"]["output"]["psnr_db"] > 0


def test_finetune_on_a_bad_folder_is_a_usage_error(tmp_path, capsys):
    assert main(["finetune", "anyir", "--variant", "tiny", "--task", "denoise25", "--data", str(tmp_path)]) == 2
    assert "holds no image files" in capsys.readouterr().err


def test_eval_of_a_bundle_runs_its_artifact(exported, capsys):
    bundle = exported("anyir", "onnx")
    assert main(["eval", str(bundle.path), "--count", "2"]) == 0
    printed = capsys.readouterr().out
    assert "forward: PSNR" in printed and "random weights" in printed


def test_shipped_weights_are_the_default_and_random_stays_available():
    _, info = build_model_with_weights("anyir", "tiny", "denoise25")
    assert info.source == "edgeir-default"
    evaluation = info.provenance["eval"]
    assert evaluation["psnr_db"] > evaluation["input_psnr_db"] + 3
    manifest_weights = info.to_json()
    assert manifest_weights["provenance"]["task"] == "denoise25" and "note" not in manifest_weights
    _, random = build_model_with_weights("anyir", "tiny", "denoise25", "random")
    assert random.source == "random-init" and random.state_sha256 != info.state_sha256
    _, other_task = build_model_with_weights("anyir", "tiny", "allinone3")
    assert other_task.source == "random-init"
    # verify rebuilds each reference from its manifest record, whatever the defaults are now.
    from edgeir.runtime.verify import _rebuild_reference

    for record in (info, random):
        manifest = {"method": "anyir", "variant": "tiny", "task": "denoise25", "weights": record.to_json()}
        from edgeir.weights.checkpoint import state_dict_sha256

        assert state_dict_sha256(_rebuild_reference(manifest, None)) == record.state_sha256


def test_finetune_qat_trains_the_targets_fake_quant_program_and_writes_its_bundle(tmp_path, capsys):
    code = main(["finetune", "nafnet", "--variant", "tiny", "--task", "denoise25", "--qat", "int8", "--target", "onnx",
                 "--steps", "2", "--crop", "32", "--lr", "1e-5", "-o", str(tmp_path)])
    assert code == 0
    printed = capsys.readouterr().out
    bundle = tmp_path / "nafnet-tiny-denoise25-onnx-int8"
    assert f"wrote {bundle}" in printed and "nncf QAT 2 steps" in printed
    manifest = json.loads((bundle / "manifest.json").read_text())
    quantization = manifest["quantization"]
    assert quantization["mode"] == "qat" and quantization["qat_steps"] == 2
    assert quantization["programs"]["forward"]["qat"]["lr"] == 1e-5
    assert manifest["recipe"]["programs"][0]["inputs"][0]["shape"] == [1, 3, 32, 32]


@pytest.mark.parametrize("args, message", [
    (["--qat", "int8"], "--qat needs --target"),
    (["--target", "onnx"], "belong to quantization-aware fine-tuning"),
    (["--qat", "int8", "--target", "onnx", "--resume"], "do not apply to --qat"),
    (["--qat", "fp32", "--target", "onnx"], "qat-steps applies to trainable"),
])
def test_finetune_qat_flags_are_checked(tmp_path, capsys, args, message):
    assert main(["finetune", "nafnet", "--variant", "tiny", "--task", "denoise25", "-o", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
