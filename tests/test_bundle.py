import pytest

from edgeir.bundle import Bundle, atomic_directory, bundle_name
from edgeir.errors import StageError, UsageError


def test_atomic_directory_renames_into_place(tmp_path):
    final = tmp_path / "b"
    with atomic_directory(final) as tmp:
        (tmp / "x").write_text("1")
        assert not final.exists()
    assert (final / "x").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


def test_failure_leaves_nothing_and_keeps_the_old_bundle(tmp_path):
    final = tmp_path / "b"
    final.mkdir()
    (final / "old").write_text("keep")
    with pytest.raises(RuntimeError):
        with atomic_directory(final) as tmp:
            (tmp / "half").write_text("partial")
            raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["b"]
    assert [p.name for p in final.iterdir()] == ["old"]


def test_export_failure_mid_stage_leaves_no_bundle(tmp_path, monkeypatch):
    import edgeir
    from edgeir.targets import onnx as onnx_target

    def broken_export(self, recipe, options, out_dir):
        (out_dir / "model.onnx").write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(onnx_target.OnnxTarget, "export", broken_export)
    with pytest.raises(StageError, match="stage 'export' failed: RuntimeError: disk full"):
        edgeir.export("anyir", "onnx", variant="tiny", output=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_bundle_name():
    assert bundle_name("anyir", "tiny", "allinone3", "onnx", "fp32") == "anyir-tiny-allinone3-onnx-fp32"


def test_open_rejects_non_bundle(tmp_path):
    with pytest.raises(UsageError, match="not an edgeir bundle"):
        Bundle.open(tmp_path)
