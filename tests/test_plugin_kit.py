"""The plugin kit: edgeir.plugin's surface, and edgeir.testing on the tutorial's DnCNN plugin written outside the repo.

The plugin's files are the code blocks of docs/plugin-tutorial.md (so the tutorial is what is tested). It is
"installed" without pip: its package and a ``*.dist-info`` directory with its entry points go into a folder
on the PYTHONPATH of a subprocess, where importlib.metadata discovers it like an installed distribution.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgeir.discovery import methods

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "plugin-tutorial.md"
BLOCK = re.compile(r'^```\w+ title="(?P<path>[^"]+)"\n(?P<body>.*?)^```$', re.S | re.M)
HEAVY = ("torch", "executorch", "coremltools", "onnxruntime", "onnx")
KIT_NAMES = ("MethodSpec", "Variant", "IOContract", "ExportRecipe", "Program", "TensorSpec", "TileSpec",
             "RecipeOptions", "TLCOptions", "Rewrite", "ShippedWeights", "weights_table", "load_into")


def tutorial_files() -> dict[str, str]:
    """The files the tutorial writes, by path, from its titled code blocks."""
    files = {m["path"]: m["body"] for m in BLOCK.finditer(TUTORIAL.read_text())}
    assert {"pyproject.toml", "edgeir_dncnn/__init__.py", "edgeir_dncnn/model.py"} <= set(files), sorted(files)
    return files


def install_plugin(root: Path, edits: dict[str, tuple[str, str]] | None = None, entry_name: str | None = None
                   ) -> dict[str, str]:
    """Write the tutorial plugin under ``root/site`` as an importable package plus its dist-info; return the
    environment of a subprocess that sees it. ``edits``: file -> (old, new) text replaced in it (it must be
    there); ``entry_name`` renames the entry point."""
    site = root / "site"
    files = tutorial_files()
    for path, (old, new) in (edits or {}).items():
        assert old in files[path], f"the tutorial's {path} no longer contains {old!r}"
        files[path] = files[path].replace(old, new)
    project = tomllib.loads(files.pop("pyproject.toml"))["project"]
    for path, text in files.items():
        (site / path).parent.mkdir(parents=True, exist_ok=True)
        (site / path).write_text(text)
    dist_info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\n"
                                        f"Version: {project['version']}\n")
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        for name, value in entries.items():
            lines.append(f"{entry_name or name} = {value}")
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               OMP_NUM_THREADS="1", EDGEIR_PROGRESS="0")
    return env


def run(args: list[str], env: dict[str, str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def run_checks(env: dict[str, str], cwd: Path, *checks: str) -> dict[str, dict[str, str]]:
    """Run kit checks (functions of edgeir.testing.conformance taking the method name) on dncnn in a subprocess."""
    code = ("import json, sys\nfrom edgeir.testing import conformance as kit\n"
            "checks = [kit.Check(name, lambda f=getattr(kit, name): f('dncnn')) for name in sys.argv[1:]]\n"
            "out = {check.name: kit.run_check(check) for check in checks}\n"
            "print(json.dumps({k: {'status': o.status, 'detail': o.detail} for k, o in out.items()}))")
    result = run(["-c", code, *checks], env, cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_plugin_surface_is_importable_from_edgeir_plugin_and_edgeir_without_heavy_sdks():
    probe = ("import sys, edgeir, edgeir.plugin as p\n"
             f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"import edgeir.plugin loaded {out}"
    import edgeir
    import edgeir.plugin

    for name in (*KIT_NAMES, *edgeir.plugin.__all__):
        assert getattr(edgeir.plugin, name) is getattr(edgeir, name), name


def test_tutorial_plugin_passes_check_plugin_on_onnx(tmp_path):
    env = install_plugin(tmp_path)
    result = run(["-m", "edgeir", "check-plugin", "dncnn", "--targets", "onnx"], env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    lines = {line.split()[1]: line.split()[0] for line in result.stdout.splitlines()
             if line.startswith(("PASS", "FAIL", "NOT RUN"))}
    assert lines == {name: "PASS" for name in ("spec", "declared-params", "io-contract", "checkpoint", "export[onnx]",
                                               "verify[onnx]", "recipe-io[onnx]")}, result.stdout
    assert "paper 556,096" in result.stdout  # the paper's DnCNN-S
    assert "dncnn: 7 passed, 0 failed, 0 not run" in result.stdout
    assert not list(tmp_path.glob("dncnn-*")) and not (tmp_path / "artifacts").exists()  # exports were temporary


def test_tutorial_plugin_passes_under_pytest_pyargs_from_outside_the_repo(tmp_path):
    env = install_plugin(tmp_path)
    # the method's own checks (the exports are covered by the check-plugin test above)
    result = run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs", "edgeir.testing", "--method", "dncnn",
                  "--targets", "onnx", "-k", "not export and not verify and not recipe"], env, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "4 passed" in result.stdout, result.stdout[-2000:]


def test_kit_under_pytest_without_method_skips_saying_how_to_run_it(tmp_path):
    result = run(["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--pyargs", "edgeir.testing"],
                 dict(os.environ), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout and "give --method NAME" in result.stdout


def test_entry_point_name_other_than_spec_name_fails_the_kit_naming_both(tmp_path):
    env = install_plugin(tmp_path, entry_name="dncnn-s")
    result = run(["-m", "edgeir", "check-plugin", "dncnn-s", "--targets", "onnx"], env, tmp_path)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "FAIL" in result.stdout and "spec" in result.stdout
    assert "entry point is called 'dncnn-s' but the method calls itself 'dncnn'" in result.stdout + result.stderr
    assert "export[onnx]" not in result.stdout  # nothing else is attempted on a spec that does not load


def test_wrong_declarations_fail_the_kit_naming_the_problem(tmp_path):
    env = install_plugin(tmp_path, edits={
        "edgeir_dncnn/__init__.py": ("declared_params=556_096", "declared_params=600_000"),
    })
    outcomes = run_checks(env, tmp_path, "check_declared_params", "check_spec")
    assert outcomes["check_spec"]["status"] == "passed"
    assert outcomes["check_declared_params"]["status"] == "failed"
    detail = outcomes["check_declared_params"]["detail"]
    assert "variant 'paper' declares 600,000 parameters but builds 556,096" in detail


def test_io_contract_and_checkpoint_violations_fail_the_kit(tmp_path):
    io_line = "return IOContract(in_channels=3, out_channels=3, scale=1, size_multiple=1)"
    convert_line = 'return {name.removeprefix("module."): tensor for name, tensor in state.items()}'
    env = install_plugin(tmp_path / "scale", edits={"edgeir_dncnn/__init__.py": (io_line, io_line.replace(
        "scale=1", "scale=2"))})
    detail = run_checks(env, tmp_path, "check_io_contract")["check_io_contract"]
    assert "scale=2" in detail["detail"] and "(1, 3, 16, 18)" in detail["detail"], detail
    env = install_plugin(tmp_path / "multiple", edits={"edgeir_dncnn/__init__.py": (io_line, io_line.replace(
        "size_multiple=1", "size_multiple=4"))})
    detail = run_checks(env, tmp_path, "check_io_contract")["check_io_contract"]
    assert detail["status"] == "failed" and "must raise ValueError" in detail["detail"], detail
    env = install_plugin(tmp_path / "ckpt", edits={"edgeir_dncnn/__init__.py": (convert_line, convert_line.replace(
        ": tensor for", ": tensor * 0.5 for"))})
    detail = run_checks(env, tmp_path, "check_checkpoint_round_trip")["check_checkpoint_round_trip"]
    assert detail["status"] == "failed" and "differs from the one saved" in detail["detail"], detail


def test_check_plugin_unknown_method_lists_the_valid_ones(capsys):
    from edgeir.cli import main

    assert main(["check-plugin", "nafnett"]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'nafnett'" in err and "nafnet" in err


@pytest.mark.parametrize("args, kit", [(["--pyargs", "edgeir.testing"], True),
                                       (["--pyargs", "edgeir.testing.test_plugin::test_plugin"], True),
                                       (["--pyargs", "edgeir.testingx"], False), (["tests"], False)])
def test_pytest_entry_point_registers_the_options_only_for_the_kit(args, kit):
    from edgeir.testing.pytest_plugin import names_kit

    assert names_kit([a for a in args if not a.startswith("-")]) is kit


@pytest.mark.parametrize("method", methods().registry.names())
def test_every_builtin_method_passes_the_kits_method_checks(method):
    from edgeir.testing import conformance as kit

    for check in (kit.check_spec, kit.check_declared_params, kit.check_io_contract, kit.check_checkpoint_round_trip):
        check(method)


@pytest.mark.slow
def test_check_plugin_passes_on_nafnet_for_every_target(capsys):
    from edgeir.cli import main

    code = main(["check-plugin", "nafnet"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert ", 0 failed, " in out and "FAIL" not in out


def test_check_plugin_unknown_target_lists_the_valid_ones(capsys):
    from edgeir.cli import main

    assert main(["check-plugin", "nafnet", "--targets", "onnx,tflite"]) == 2
    err = capsys.readouterr().err
    assert "unknown target 'tflite'" in err and "onnx" in err
