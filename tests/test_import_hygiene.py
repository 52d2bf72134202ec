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
