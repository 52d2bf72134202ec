import subprocess
import sys

HEAVY = ("torch", "executorch", "coremltools", "onnxruntime", "onnx")


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return [m for m in out.strip().split(",") if m]


def test_import_edgeir_loads_no_heavy_sdk():
    assert _loaded_after("import edgeir") == []


def test_listing_loads_no_heavy_sdk():
    code = ("import contextlib, io\nfrom edgeir.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): main(['list'])")
    assert _loaded_after(code) == []


def test_public_api_functions_survive_submodule_imports():
    import edgeir
    import edgeir.hostinfo  # noqa: F401
    import edgeir.pipeline.export  # noqa: F401
    import edgeir.runtime.restore  # noqa: F401
    import edgeir.runtime.verify  # noqa: F401

    for name in ("build_model", "export", "verify", "run", "environment"):
        assert callable(getattr(edgeir, name)), name


def _core_contract() -> dict:
    from pathlib import Path

    import tomllib

    config = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["tool"]["importlinter"]
    return next(c for c in config["contracts"] if set(c["forbidden_modules"]) >= {"edgeir.plugins", "edgeir.targets"})


def test_every_core_module_is_bound_by_the_import_contract():
    from pathlib import Path

    root = Path(__file__).parents[1] / "edgeir"
    extensions = {"plugins", "targets", "quant"}  # links to the top-level packages, the other side of the contract
    core = {p.stem for p in root.iterdir() if p.name not in extensions and not p.name.startswith(("_", "."))
            and (p.suffix == ".py" or (p / "__init__.py").exists())}
    listed = {m.removeprefix("edgeir.") for m in _core_contract()["source_modules"]}
    assert core - listed == set(), f"core modules missing from the import contract in pyproject.toml: {core - listed}"


def test_import_contracts_hold():
    from pathlib import Path

    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint)], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "broken" not in result.stdout.lower().replace("0 broken", "")
