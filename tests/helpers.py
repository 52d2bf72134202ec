"""Helpers shared by the tests (imported as ``from helpers import ...``; fixtures stay in conftest.py)."""


def write_synthetic_bundle(root, name, *, target="onnx", backend="onnxruntime", quant="fp32", payload=b"model",
                           min_psnr=120.0, eval_psnr=30.0, reference_eval_psnr=30.1, coverage=None,
                           latency_ms=None, device="host-test-cpu-2c", kind="host", verify_status="passed"):
    """A bundle directory built from JSON alone (no export): manifest, a fake artifact, verify.json, a profile.

    Args:
        latency_ms: Samples for one host profile of program ``forward`` (no profile when None).
        coverage: ExecuTorch delegation coverage written into the manifest (none when None).
    """
    import hashlib
    import json
    from pathlib import Path

    path = Path(root) / name
    (path / "profiles").mkdir(parents=True, exist_ok=True)
    artifact = {"onnx": "model.onnx", "executorch": "model.pte", "coreml": "model.bin"}[target]
    (path / artifact).write_bytes(payload)
    sha = hashlib.sha256(payload).hexdigest()
    image = {"name": "image", "shape": [1, 3, 8, 8], "dtype": "float32", "kind": "image"}
    details = {"delegation": {"forward": {"coverage": coverage}}} if coverage is not None else {}
    manifest = {
        "schema_version": 1, "method": "anyir", "variant": "tiny", "task": "allinone3", "target": target,
        "backend": backend, "quant": quant,
        "weights": {"source": "random-init", "state_sha256": "0" * 64, "seed": 0},
        "recipe": {"programs": [{"name": "forward", "inputs": [image], "outputs": [dict(image, name="restored")]}]},
        "target_details": details, "files": {artifact: sha},
    }
    from edgeir.bundle import write_json
    from edgeir.integrity import artifact_digest, seal

    write_json(path / "manifest.json", seal(manifest))
    digest = artifact_digest(manifest["files"])
    if verify_status == "not-run":
        verify = {"status": "not-run", "reason": "Core ML predictions need macOS", "artifact_digest": digest}
    else:
        verify = {"status": verify_status, "artifact_digest": digest, "programs": {"forward": {
            "status": verify_status, "min_psnr_db": min_psnr, "mean_psnr_db": min_psnr + 1,
            "eval_psnr_db": eval_psnr, "reference_eval_psnr_db": reference_eval_psnr,
            "psnr_drop_db": round(reference_eval_psnr - eval_psnr, 3)}}}
    (path / "verify.json").write_text(json.dumps(verify))
    if latency_ms is not None:
        from edgeir.profiles.device import Device
        from edgeir.profiles.profile import Measurement, Profile

        Profile(bundle=name, device=Device(device, "Test CPU", 2, "Linux", kind), runtime={"name": "onnxruntime"},
                artifact_sha256={artifact: sha}, source="test", created="2026-01-01T00:00:00+00:00",
                measurements=(Measurement("forward", (1, 3, 8, 8), 1, 1, tuple(latency_ms), 100.0, "test"),),
                artifact_digest=digest).save(path)
    return path
