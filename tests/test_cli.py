import json

import pytest

from edgeir.cli import main


def test_list_json_shows_builtins(capsys):
    assert main(["list", "--json"]) == 0
    catalog = json.loads(capsys.readouterr().out)
    assert "anyir" in catalog["methods"]
    assert {"onnx", "executorch", "coreml"} <= set(catalog["targets"])
    assert catalog["targets"]["coreml"]["default_quant"] == "fp16"


@pytest.mark.parametrize("argv, code, message", [
    (["export", "nosuch", "--target", "onnx"], 2, "unknown method 'nosuch'; valid: anyir"),
    (["export", "anyir", "--target", "tflite"], 2, "unknown target 'tflite'; valid: coreml, executorch, onnx"),
    (["export", "anyir", "--target", "onnx", "--variant", "huge"], 2, "valid: mobile, paper, tiny"),
    (["export", "anyir", "--target", "onnx", "--task", "sr4"], 2, "unknown task of anyir 'sr4'"),
    (["export", "anyir", "--target", "executorch", "--quant", "fp16"], 2, "for target executorch, which offers"),
    (["export", "anyir", "--target", "onnx", "--variant", "tiny", "--size", "60"], 2, "multiples of 8"),
])
def test_bad_input_is_one_sentence_with_exit_code(argv, code, message, capsys, tmp_path):
    assert main([*argv, "-o", str(tmp_path)]) == code
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_wrong_checkpoint_names_keys(tmp_path, capsys):
    import torch

    torch.save({"state_dict": {"net.bogus.weight": torch.zeros(1)}}, tmp_path / "bad.ckpt")
    code = main(["export", "anyir", "--target", "onnx", "--variant", "tiny", "--weights", str(tmp_path / "bad.ckpt"),
                 "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "unexpected keys: bogus.weight" in err and "missing keys" in err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_verify_on_a_non_bundle(tmp_path, capsys):
    assert main(["verify", str(tmp_path)]) == 2
    assert "not an edgeir bundle" in capsys.readouterr().err


def test_env_reports_versions_and_plugins(capsys):
    assert main(["env", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["packages"]["torch"].startswith("2.13")
    assert "anyir" in info["plugins"]["methods"]


def test_list_in_a_checkout_that_is_not_installed_says_why(tmp_path):
    """Without the package's entry points (a bare checkout on sys.path), `edgeir list` explains, not prints empty."""
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "edgeir").symlink_to(Path(__file__).parents[1] / "edgeir")
    result = subprocess.run([sys.executable, "-S", "-m", "edgeir", "list"], cwd=tmp_path, capture_output=True,
                            text=True, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 3
    assert "not installed" in result.stderr and "Methods:" not in result.stdout
