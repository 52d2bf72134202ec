"""Importing profiles measured on devices: ETDump, ONNX Runtime profiling JSON, app JSON; sha256 checks."""

import hashlib
import json

import pytest
from helpers import write_synthetic_bundle
from profile_fixtures import write_etdump, write_ort_profile

from edgeir.cli import main
from edgeir.errors import UsageError
from edgeir.profiles.importing import detect_format, import_profile
from edgeir.profiles.profile import bundle_profiles, load_profile

PAYLOAD = b"artifact bytes"
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture()
def bundle(tmp_path):
    return write_synthetic_bundle(tmp_path, "anyir-tiny-allinone3-executorch-fp32", target="executorch",
                                  backend="xnnpack", payload=PAYLOAD)


def test_etdump_import(bundle, tmp_path):
    etdump = write_etdump(tmp_path / "run.etdp", runs_ms=(4.0, 5.0, 6.0, 7.0))
    assert detect_format(etdump) == "etdump"
    profile, path = import_profile(bundle, etdump, device="Pixel 8 Pro", chip="Tensor G3", os="Android 14",
                                   sha256=SHA, threads=4)
    assert path == bundle / "profiles" / "pixel-8-pro.json"
    saved = load_profile(path)
    assert saved.device.kind == "target" and saved.measured_on == "the target device"
    assert saved.device.chip == "Tensor G3" and saved.artifact_sha256 == {"model.pte": SHA}
    m = saved.measurement()
    assert m.samples_ms == (4.0, 5.0, 6.0, 7.0) and m.threads == 4
    assert m.latency_ms() == {"min": 4.0, "p50": 5.5, "p90": pytest.approx(6.7), "max": 7.0}
    assert [row["op"] for row in m.ops][0] == "native_call_convolution.out"
    assert sum(row["share"] for row in m.ops) == pytest.approx(1.0)
    assert json.loads(path.read_text())["measured_on"] == "target"


def test_ort_import_via_cli(tmp_path, capsys):
    bundle = write_synthetic_bundle(tmp_path, "anyir-tiny-allinone3-onnx-fp32", payload=PAYLOAD)
    trace = write_ort_profile(tmp_path, runs=3)
    assert detect_format(trace) == "ort"
    assert main(["import-profile", str(bundle), str(trace), "--device", "galaxy-s24", "--sha256", SHA]) == 0
    assert "galaxy-s24 (the target device)" in capsys.readouterr().out
    profile = bundle_profiles(bundle)["galaxy-s24"]
    m = profile.measurement()
    assert len(m.samples_ms) == 3 and {row["op"] for row in m.ops} >= {"Conv"}
    assert profile.runtime["name"] == "onnxruntime"


def test_app_json_import(bundle, tmp_path):
    app = tmp_path / "app.json"
    app.write_text(json.dumps({
        "format": "edgeir-app-profile/1", "artifact_sha256": SHA, "program": "forward",
        "device": {"id": "iPhone 15 Pro", "chip": "A17 Pro", "os": "iOS 17.5", "cores": 6},
        "runtime": {"name": "executorch", "version": "1.4.1", "backend": "xnnpack"},
        "threads": 2, "warmup": 3, "samples_ms": [8.0, 9.0, 10.0], "peak_memory_mb": 42.5}))
    profile, _ = import_profile(bundle, app)
    assert profile.device.id == "iphone-15-pro" and profile.device.cores == 6
    m = profile.measurement()
    assert m.latency_ms()["p50"] == 9.0 and m.peak_memory_mb == 42.5 and m.warmup == 3


def test_imports_are_checked_against_the_bundle(bundle, tmp_path, capsys):
    etdump = write_etdump(tmp_path / "run.etdp")
    with pytest.raises(UsageError, match="measured on a different export"):
        import_profile(bundle, etdump, device="pixel", sha256="0" * 64)
    with pytest.raises(UsageError, match="needs --sha256"):
        import_profile(bundle, etdump, device="pixel")
    with pytest.raises(UsageError, match="needs --device"):
        import_profile(bundle, etdump, sha256=SHA)
    app = tmp_path / "app.json"
    app.write_text(json.dumps({"format": "edgeir-app-profile/1", "artifact_sha256": "f" * 64,
                               "device": {"id": "x"}, "runtime": {"name": "coreml"}, "samples_ms": [1.0]}))
    assert main(["import-profile", str(bundle), str(app)]) == 2
    assert "different export" in capsys.readouterr().err
    app.write_text(json.dumps({"format": "edgeir-app-profile/1", "device": {"id": "x"}}))
    with pytest.raises(UsageError, match="lacks artifact_sha256, runtime, samples_ms"):
        import_profile(bundle, app)
    assert not bundle_profiles(bundle)
