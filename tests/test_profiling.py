"""edgeir profile on tiny bundles, Core ML on Linux, and edgeir report on what was measured."""

import json
import platform
import shutil

import pytest
from helpers import write_synthetic_bundle

import edgeir
from edgeir.cli import main
from edgeir.errors import UsageError
from edgeir.profiles.measure import profile
from edgeir.profiles.profile import Measurement, bundle_profiles, percentile
from edgeir.report.build import report
from edgeir.report.plots import Point, pareto_front


@pytest.fixture(scope="session")
def tiny_bundles(tmp_path_factory, torch_threads):
    """AnyIR tiny exported to ONNX and ExecuTorch XNNPACK once, verified on one photo."""
    root = tmp_path_factory.mktemp("artifacts")
    bundles = [edgeir.export("anyir", target, variant="tiny", output=root) for target in ("onnx", "executorch")]
    for bundle in bundles:
        edgeir.verify(bundle.path, photos=1)
    return root, bundles


def test_percentiles_and_pareto_front():
    assert percentile([4, 1, 3, 2], 50) == 2.5 and percentile([1, 2, 3, 4, 5], 90) == pytest.approx(4.6)
    m = Measurement("forward", (1, 3, 8, 8), 1, 0, (3.0, 1.0, 2.0))
    assert m.latency_ms() == {"min": 1.0, "p50": 2.0, "p90": pytest.approx(2.8), "max": 3.0}
    points = [Point("a", 10, 30, "g"), Point("b", 5, 28, "g"), Point("c", 12, 29, "g"), Point("d", 20, 31, "g")]
    assert [p.label for p in pareto_front(points)] == ["b", "a", "d"]


@pytest.mark.target_onnx
@pytest.mark.target_executorch
def test_profile_tiny_bundles(tiny_bundles, capsys):
    _, (onnx_bundle, et_bundle) = tiny_bundles
    assert main(["profile", str(onnx_bundle.path), "--runs", "3", "--warmup", "1", "--threads", "1,2"]) == 0
    assert "measured on this host (not the target device)" in capsys.readouterr().out
    result, path = profile(et_bundle.path, runs=3, warmup=1)
    assert path.parent == et_bundle.path / "profiles" and path.name == f"{result.device.id}.json"
    for bundle in (onnx_bundle, et_bundle):
        (saved,) = bundle_profiles(bundle.path).values()
        data = json.loads((bundle.path / "profiles" / f"{saved.device.id}.json").read_text())
        assert data["measured_on"] == "host" and data["device"]["cores"] >= 1 and data["device"]["chip"]
        assert data["runtime"]["version"] and data["artifact_sha256"] == bundle.manifest["files"]
        for m in saved.measurements:
            assert len(m.samples_ms) == 3 and m.warmup == 1 and m.peak_memory_mb > 0
            lat = m.latency_ms()
            assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["max"]
    onnx_rows = bundle_profiles(onnx_bundle.path).popitem()[1].measurements
    assert [m.threads for m in onnx_rows] == [1, 2] and all(m.ops for m in onnx_rows)
    et = bundle_profiles(et_bundle.path).popitem()[1].measurements[0]
    assert et.threads == 1 and (et.ops or any("event tracer" in n for n in et.notes))
    assert not onnx_bundle.check_integrity()


@pytest.mark.skipif(platform.system() == "Darwin", reason="Core ML runs on macOS")
def test_profile_coreml_on_linux_says_why(tmp_path, capsys):
    bundle = write_synthetic_bundle(tmp_path, "anyir-tiny-allinone3-coreml-fp16", target="coreml", quant="fp16")
    assert main(["profile", str(bundle), "--runs", "2"]) == 0
    assert "NOT MEASURED: Core ML predictions need macOS" in capsys.readouterr().out
    (saved,) = bundle_profiles(bundle).values()
    assert saved.not_run and not saved.measurements


def test_profile_refuses_a_modified_bundle_and_bad_counts(tmp_path):
    bundle = write_synthetic_bundle(tmp_path, "anyir-tiny-allinone3-onnx-fp32")
    with pytest.raises(UsageError, match="--runs must be at least 1"):
        profile(bundle, runs=0)
    (bundle / "model.onnx").write_bytes(b"changed")
    with pytest.raises(UsageError, match="modified after export"):
        profile(bundle)


def test_report_from_synthetic_profiles(tmp_path):
    root = tmp_path / "artifacts"
    write_synthetic_bundle(root, "anyir-tiny-allinone3-onnx-fp32", latency_ms=[10, 12, 14], min_psnr=110)
    write_synthetic_bundle(root, "anyir-tiny-allinone3-executorch-fp32", target="executorch", min_psnr=120,
                           latency_ms=[6, 7, 8])
    write_synthetic_bundle(root, "anyir-tiny-allinone3-executorch-portable-fp32", target="executorch",
                           backend="portable", min_psnr=130, latency_ms=[30, 31, 40])
    write_synthetic_bundle(root, "anyir-tiny-allinone3-executorch-portable-fp32", target="executorch",
                           backend="portable", min_psnr=130, latency_ms=[3, 4, 5], device="pixel-8", kind="target")
    write_synthetic_bundle(root, "anyir-tiny-allinone3-coreml-fp16", target="coreml", quant="fp16",
                           verify_status="not-run")
    result = report(root, crop=False)
    assert {p.name for p in result.pngs} == {"accuracy-latency-host-test-cpu-2c.png", "accuracy-latency-pixel-8.png"}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in result.pngs)
    page = result.html.read_text()
    assert page.count("data:image/png;base64,") == 2 and "<script" not in page and 'src="http' not in page
    assert "FlexIR does not exist" not in page and "Core ML predictions need macOS" in page
    assert "no bundle with adaptive inference" in page  # none of these has early exits
    assert "this host, not on a phone" in page


@pytest.mark.target_onnx
@pytest.mark.target_executorch
def test_report_with_crops_on_tiny_bundles(tiny_bundles, tmp_path, capsys):
    root, bundles = tiny_bundles
    for bundle in bundles:
        if not bundle_profiles(bundle.path):
            profile(bundle.path, runs=2, warmup=1, ops=False)
    out = tmp_path / "report"
    assert main(["report", str(root), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (out / "crops.png").stat().st_size > 10_000 and (out / "report.html").is_file()
    assert len(list(out.glob("accuracy-latency-host-*.png"))) == 1
    shutil.rmtree(out)
