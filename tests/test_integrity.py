"""Trust end to end: every command checks the bundle it reads, evidence must describe the artifact, bad
input never stops a batch or loses a file. One tiny ONNX bundle is exported for the module and copied
per case; every bad input is generated here."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import write_synthetic_bundle

import edgeir
from edgeir.bundle import MANIFEST, VERIFY, Bundle, remove_stale_partials, write_json
from edgeir.cli import main
from edgeir.errors import BatchError, CheckpointError, GateFileError, ImageError, IntegrityError, StageError, UsageError
from edgeir.integrity import artifact_digest, check_manifest, manifest_digest, seal


def _keypair(folder: Path, name: str) -> tuple[Path, Path]:
    """An ed25519 private key and its public key, as PEM files (what openssl genpkey / pkey -pubout write)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private, public = folder / f"{name}.pem", folder / f"{name}.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """A tiny AnyIR ONNX bundle exported from a checkpoint in a 'build' folder, signed, verified once."""
    import torch

    keys = tmp_path_factory.mktemp("keys")
    ci_key, ci_pub = _keypair(keys, "ci")
    build = tmp_path_factory.mktemp("build-dir-of-this-machine")
    model = edgeir.build_model("anyir", variant="tiny", task="denoise25", weights="random")
    checkpoint = build / "weights" / "anyir-tiny.pth"
    checkpoint.parent.mkdir()
    torch.save(model.state_dict(), checkpoint)
    bundle = edgeir.export("anyir", "onnx", variant="tiny", task="denoise25", weights=checkpoint,
                           output=build / "artifacts", sign_key=ci_key)
    edgeir.verify(bundle.path, photos=1, weights=checkpoint, trust_key=ci_pub)
    return {"build": build, "bundle": bundle.path, "checkpoint": checkpoint, "key": ci_key, "pub": ci_pub}


@pytest.fixture()
def bundle(built, tmp_path):
    """A private copy of the module's bundle, under tmp_path/artifacts/."""
    copy = tmp_path / "artifacts" / built["bundle"].name
    shutil.copytree(built["bundle"], copy)
    return copy


def _photos(folder: Path, names=("a", "c"), broken="b") -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray((rng.random((24, 20, 3)) * 255).astype(np.uint8)).save(folder / f"{name}.png")
    if broken:
        (folder / f"{broken}.png").write_bytes((folder / f"{names[0]}.png").read_bytes()[:60])


def _gate(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "gates.toml"
    path.write_text('[gate]\nartifacts = "artifacts"\n' + textwrap.dedent(body))
    return path


def _rewrite_manifest(bundle: Path, change, reseal: bool = False) -> None:
    manifest = json.loads((bundle / MANIFEST).read_text())
    change(manifest)
    if reseal:
        seal(manifest)
    write_json(bundle / MANIFEST, manifest)


# --- the integrity check --------------------------------------------------------------------------


def test_fresh_bundle_passes_and_verify_leaves_the_manifest_alone(built):
    path = built["bundle"]
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["manifest_sha256"] == manifest_digest(manifest)
    digest = check_manifest(path, manifest)
    assert digest == artifact_digest(manifest["files"])
    assert json.loads((path / VERIFY).read_text())["artifact_digest"] == digest
    before = (path / MANIFEST).read_bytes()
    edgeir.verify(path, photos=1, weights=built["checkpoint"])
    assert (path / MANIFEST).read_bytes() == before  # verify writes verify.json only


def test_missing_files_table_is_an_error_not_a_skip(bundle):
    _rewrite_manifest(bundle, lambda m: m.pop("files"), reseal=True)
    with pytest.raises(IntegrityError, match="no 'files' table"):
        edgeir.verify(bundle, photos=1)


def test_edited_manifest_content_is_refused(bundle):
    _rewrite_manifest(bundle, lambda m: m["recipe"]["programs"][0]["outputs"][0].update(scale=2))
    with pytest.raises(IntegrityError, match="manifest.json was modified after export"):
        edgeir.verify(bundle, photos=1)


def test_missing_artifact_is_one_sentence_not_a_traceback(bundle, tmp_path, capsys):
    (bundle / "model.onnx").unlink()
    _photos(tmp_path / "in", broken=None)
    assert main(["run", str(bundle), str(tmp_path / "in" / "a.png"), "-o", str(tmp_path / "o.png")]) == 2
    assert "artifact file(s) missing: model.onnx" in capsys.readouterr().err


def _refused_by_every_command(bundle: Path, work: Path) -> None:
    """run, verify, profile, import-profile and report raise; gate fails every rule on the bundle."""
    from edgeir.gates.rules import run_gate
    from edgeir.profiles.importing import import_profile
    from edgeir.profiles.measure import profile
    from edgeir.report.build import report
    from edgeir.runtime.restore import restore

    photo = work / "in" / "a.png"
    calls = {
        "run": lambda: restore(bundle, photo, work / "out.png"),
        "verify": lambda: edgeir.verify(bundle, photos=1),
        "profile": lambda: profile(bundle, runs=1, warmup=0, ops=False),
        "import-profile": lambda: import_profile(bundle, work / "app.json"),
        "report": lambda: report(bundle.parent, output=work / "report", crop=False),
    }
    for name, call in calls.items():
        with pytest.raises(UsageError):
            call()
            pytest.fail(f"{name} accepted a tampered bundle")
    gate = _gate(work, f"""
        [[rule]]
        bundle = "{bundle.name}"
        metric = "size_mb"
        max = 100
        """)
    gated = run_gate(gate)
    assert gated.results and all(r.status == "failed" for r in gated.results), "gate passed a tampered bundle"
    assert not (work / "out.png").exists()


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _leaves(data, path=()):
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _leaves(value, (*path, index))
    else:
        yield path


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_any_flipped_byte_or_changed_field_is_refused_by_every_command(built, data):
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        bundle = work / "artifacts" / built["bundle"].name
        shutil.copytree(built["bundle"], bundle)
        _photos(work / "in", broken=None)
        manifest = json.loads((bundle / MANIFEST).read_text())
        first = next(iter(manifest["files"].items()))
        (work / "app.json").write_text(json.dumps({
            "format": "edgeir-app-profile/1", "artifact_sha256": first[1], "device": {"id": "phone"},
            "runtime": {"name": "onnxruntime"}, "samples_ms": [1.0]}))
        if data.draw(st.booleans(), label="flip a byte (else change a manifest field)"):
            files = [MANIFEST, *manifest["files"]]
            name = data.draw(st.sampled_from(files), label="file")
            raw = bytearray((bundle / name).read_bytes())
            index = data.draw(st.integers(0, len(raw) - 1), label="byte")
            raw[index] ^= data.draw(st.integers(1, 255), label="xor")
            (bundle / name).write_bytes(bytes(raw))
        else:
            leaves = [p for p in _leaves(manifest) if p]
            where = data.draw(st.sampled_from(leaves), label="field")
            target = manifest
            for key in where[:-1]:
                target = target[key]
            old = target[where[-1]]
            target[where[-1]] = (not old if isinstance(old, bool) else old + 1 if isinstance(old, (int, float))
                                 else None if old is not None else 0) if not isinstance(old, str) else old + "x"
            write_json(bundle / MANIFEST, manifest)  # well-formed: only the content digest can catch it
        _refused_by_every_command(bundle, work)


def test_signed_bundle_verifies_only_with_its_key(built, bundle, tmp_path):
    ci_key, ci_pub = built["key"], built["pub"]
    _, other_pub = _keypair(tmp_path, "other")
    manifest = json.loads((bundle / MANIFEST).read_text())
    assert manifest["signature"]["algorithm"] == "ed25519"  # export --sign-key signed it
    assert Bundle.open(bundle).verified(ci_pub) == artifact_digest(manifest["files"])
    assert Bundle.open(bundle).verified() == artifact_digest(manifest["files"])  # no key asked: digests only
    with pytest.raises(IntegrityError, match="does not verify with the trusted key"):
        Bundle.open(bundle).verified(other_pub)
    impostor, _ = _keypair(tmp_path, "impostor")
    write_json(bundle / MANIFEST, seal(manifest, impostor))  # a look-alike, signed by someone else
    with pytest.raises(IntegrityError, match="does not verify with the trusted key"):
        Bundle.open(bundle).verified(ci_pub)
    write_json(bundle / MANIFEST, seal(manifest))  # the signature stripped, the digest recomputed
    with pytest.raises(IntegrityError, match="not signed"):
        Bundle.open(bundle).verified(ci_pub)
    write_json(bundle / MANIFEST, seal(manifest, ci_key))
    _photos(tmp_path / "in", broken=None)
    assert main(["run", str(bundle), str(tmp_path / "in" / "a.png"), "-o", str(tmp_path / "o.png"),
                 "--trust-key", str(other_pub)]) == 2
    with pytest.raises(UsageError, match="not an unencrypted PEM private key"):
        edgeir.export("anyir", "onnx", variant="tiny", output=tmp_path, sign_key=ci_pub)


# --- gates ----------------------------------------------------------------------------------------


def test_gate_fails_on_evidence_measured_on_another_artifact(tmp_path):
    root = tmp_path / "artifacts"
    path = write_synthetic_bundle(root, "anyir-tiny-allinone3-onnx-fp32", latency_ms=[1, 2, 3])
    verify = json.loads((path / VERIFY).read_text())
    (path / VERIFY).write_text(json.dumps({**verify, "artifact_digest": "ab" * 32}))
    profile_path = next((path / "profiles").glob("*.json"))
    profile = json.loads(profile_path.read_text())
    profile.pop("artifact_digest")
    profile_path.write_text(json.dumps(profile))
    from edgeir.gates.rules import run_gate

    report = run_gate(_gate(tmp_path, """
        [[rule]]
        bundle = "*"
        metric = "psnr_vs_reference_db"
        min = 60
        [[rule]]
        bundle = "*"
        metric = "latency_p50_ms"
        max = 100
        """))
    verify_result, profile_result = report.results
    assert verify_result.status == "failed" and "stale: verify.json measured sha abababababab" in verify_result.message
    assert profile_result.status == "failed" and "records no artifact digest" in profile_result.message


def test_gate_rule_matching_nothing_fails_unless_allowed(tmp_path):
    write_synthetic_bundle(tmp_path / "artifacts", "anyir-tiny-allinone3-onnx-fp32")
    body = """
        [[rule]]
        bundle = "anyir-*"
        target = "onxx"
        metric = "size_mb"
        max = 1
        """
    from edgeir.gates.rules import run_gate

    (result,) = run_gate(_gate(tmp_path, body)).results
    assert result.status == "failed" and "no bundle matches this rule" in result.message
    assert main(["gate", str(_gate(tmp_path, body))]) == 1
    assert not run_gate(_gate(tmp_path, body + "allow_empty = true\n")).results


@pytest.mark.parametrize("bounds, message", [("min = 5\nmax = 1", "min 5 is above max 1"),
                                             ("max = nan", "must be a finite number"),
                                             ("min = -inf", "must be a finite number")])
def test_gate_bounds_are_validated(tmp_path, bounds, message):
    write_synthetic_bundle(tmp_path / "artifacts", "anyir-tiny-allinone3-onnx-fp32")
    from edgeir.gates.rules import load_gate_file

    with pytest.raises(GateFileError, match=message):
        load_gate_file(_gate(tmp_path, f'[[rule]]\nbundle = "*"\nmetric = "size_mb"\n{bounds}\n'))


# --- images and folder runs -----------------------------------------------------------------------


def test_folder_run_continues_past_a_bad_photo_and_exits_non_zero(bundle, tmp_path, capsys):
    _photos(tmp_path / "in")
    with pytest.raises(BatchError) as caught:
        from edgeir.runtime.restore import restore

        restore(bundle, tmp_path / "in", tmp_path / "out")
    assert [p.name for p in caught.value.written] == ["a.png", "c.png"]
    assert [p.name for p, _ in caught.value.failures] == ["b.png"]
    assert main(["run", str(bundle), str(tmp_path / "in"), "-o", str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err
    assert "edgeir: failed: b.png: image" in err and "1 of 3 photos failed (b.png); 2 restored" in err
    assert "Traceback" not in err
    assert (tmp_path / "out2" / "a.png").is_file() and (tmp_path / "out2" / "c.png").is_file()


def test_run_never_writes_over_its_input(bundle, tmp_path, capsys):
    _photos(tmp_path / "in", broken=None)
    photo = tmp_path / "in" / "a.png"
    before = photo.read_bytes()
    assert main(["run", str(bundle), str(photo), "-o", str(photo)]) == 2
    assert main(["run", str(bundle), str(photo), "-o", str(tmp_path / "in")]) == 2  # into its own folder
    os.link(photo, tmp_path / "hardlink.png")
    assert main(["run", str(bundle), str(photo), "-o", str(tmp_path / "hardlink.png")]) == 2
    assert "is the input photo" in capsys.readouterr().err
    assert photo.read_bytes() == before


def test_output_extension_is_checked_before_any_work(bundle, tmp_path, monkeypatch):
    import edgeir.runtime.restore as runimage

    _photos(tmp_path / "in", broken=None)
    monkeypatch.setattr(runimage, "_open", lambda *a, **k: pytest.fail("the bundle was opened before the check"))
    with pytest.raises(ImageError, match="unknown image extension '.xyz'"):
        runimage.restore(bundle, tmp_path / "in" / "a.png", tmp_path / "out.xyz")


def test_pixel_limit_holds_on_the_tifffile_path_before_decoding(tmp_path):
    import tifffile

    from edgeir.data.imageio import MAX_PIXELS, load_image

    path = tmp_path / "bomb.tif"  # 16-bit grey + alpha: a layout Pillow does not open, so tifffile decodes it
    tifffile.imwrite(path, np.zeros((4, 4, 2), np.uint16), photometric="minisblack", extrasamples=["unassalpha"])
    raw = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        offsets = [(tags[t].valueoffset, tags[t].dtype) for t in (256, 257)]
    for offset, dtype in offsets:  # declare 20000 x 20000 without the pixels
        size = 2 if int(dtype) == 3 else 4
        raw[offset:offset + size] = (20000).to_bytes(size, "little")
    path.write_bytes(bytes(raw))
    assert 20000 * 20000 > MAX_PIXELS
    with pytest.raises(ImageError, match="declares 20000x20000"):
        load_image(path)


def test_pixel_limit_holds_on_the_pillow_path(tmp_path):
    import struct
    import zlib

    from edgeir.data.imageio import load_image

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 15000, 15000, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    with pytest.raises(ImageError, match="15000x15000|too large"):
        load_image(path)


# --- checkpoints ----------------------------------------------------------------------------------


@pytest.mark.parametrize("content, message", [
    (b"", "is an empty file"),
    (np.random.default_rng(1).bytes(256), "is not a checkpoint .* unrecognised binary data"),
    (b"hello, this is a README\n", "it is a text file"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "it is a PNG image"),
    (b"PK\x03\x04" + b"\0" * 40, "damaged zip archive"),
])
def test_checkpoint_errors_say_what_the_file_is(tmp_path, content, message):
    from edgeir.weights.checkpoint import read_checkpoint

    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(path)


def test_checkpoint_format_comes_from_the_bytes_not_the_suffix(tmp_path):
    import torch
    from safetensors.torch import save_file

    from edgeir.weights.checkpoint import checkpoint_format, read_checkpoint

    save_file({"w": torch.ones(2)}, tmp_path / "w.SafeTensors")
    torch.save({"w": torch.ones(2)}, tmp_path / "w.safetensors")  # a torch zip named like safetensors
    assert checkpoint_format(tmp_path / "w.SafeTensors") == "safetensors"
    assert checkpoint_format(tmp_path / "w.safetensors") == "zip"
    assert float(read_checkpoint(tmp_path / "w.SafeTensors")["w"].sum()) == 2.0
    assert float(read_checkpoint(tmp_path / "w.safetensors")["w"].sum()) == 2.0
    (tmp_path / "t.pth").write_bytes((tmp_path / "w.safetensors").read_bytes()[:-30])
    with pytest.raises(CheckpointError):
        read_checkpoint(tmp_path / "t.pth")


# --- recipes ----------------------------------------------------------------------------------------


def _recipe(**changes):
    import dataclasses

    import torch

    from edgeir.recipe import ExportRecipe, Program, TensorSpec, TileSpec

    output = TensorSpec("restored", changes.pop("out_shape", (1, 3, 16, 16)), scale=changes.pop("scale", 1))
    program = Program("forward", torch.nn.Conv2d(3, 3, 3, padding=1), (TensorSpec("image", (1, 3, 16, 16), pad_to=8),),
                      (output,))
    tile = dataclasses.replace(TileSpec((16, 16), 4, 8), **changes)
    return ExportRecipe(programs=(program,), tile=tile)


@pytest.mark.parametrize("changes, field", [
    ({"out_shape": (1, 3, 32, 32)}, r"programs\[forward\].outputs\[0\].shape"),
    ({"out_shape": (1, 3, 32, 32), "scale": 2}, r"programs\[forward\].outputs\[0\].shape"),
    ({"scale": 2}, r"programs\[forward\].outputs\[0\].scale"),
    ({"overlap": -1}, r"recipe.tile.overlap"),
    ({"overlap": 16}, r"recipe.tile.overlap"),
    ({"size": (20, 16)}, r"recipe.tile.size"),
    ({"multiple": 0}, r"recipe.tile.multiple"),
])
def test_recipe_declarations_are_checked_against_the_program(changes, field):
    from edgeir.pipeline.recipe_check import check_recipe

    with pytest.raises(StageError, match=f"stage 'recipe'.*{field}"):
        check_recipe("plugin", _recipe(**changes))
    check_recipe("plugin", _recipe())


def test_export_refuses_a_plugin_recipe_with_a_wrong_output_shape(tmp_path, monkeypatch):
    import dataclasses

    import edgeir.pipeline.export as pipeline
    from edgeir.discovery import methods

    real = methods().get("anyir")

    def wrong_recipe(model, options):
        recipe = real.recipe(model, options)
        program = recipe.programs[0]
        bad = dataclasses.replace(program.outputs[0], shape=(1, 3, 7, 7))
        return dataclasses.replace(recipe, programs=(dataclasses.replace(program, outputs=(bad,)),))

    class Methods:
        def get(self, name):
            return dataclasses.replace(real, recipe=wrong_recipe)

    monkeypatch.setattr(pipeline, "methods", lambda: Methods())
    with pytest.raises(StageError, match=r"outputs\[0\].shape: \[1, 3, 7, 7\]"):
        edgeir.export("anyir", "onnx", variant="tiny", output=tmp_path, weights="random")
    assert not list(tmp_path.iterdir()) or not any(tmp_path.rglob(MANIFEST))


# --- CLI bounds, signals, partial directories, local paths -----------------------------------------


@pytest.mark.parametrize("argv", [
    ["export", "anyir", "--target", "onnx", "--size", "100000x100000"],
    ["profile", "nowhere", "--threads", "1000"],
    ["profile", "nowhere", "--runs", "0"],
])
def test_sizes_and_thread_counts_are_usage_errors_up_front(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_sigterm_is_handled_like_ctrl_c(tmp_path):
    script = textwrap.dedent(f"""
        import argparse, sys, time
        from pathlib import Path
        import edgeir.cli as cli
        from edgeir.bundle import atomic_directory

        def slow(args):
            with atomic_directory(Path({str(tmp_path)!r}) / "bundle") as tmp:
                (tmp / "model.onnx").write_text("half")
                print("ready", flush=True)
                time.sleep(60)

        def parser():
            p = argparse.ArgumentParser()
            p.add_argument("--debug", action="store_true")
            p.add_argument("-q", "--quiet", action="store_true")
            p.set_defaults(handler=slow)
            return p

        cli.build_parser = parser
        sys.exit(cli.main([]))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "interrupted; nothing was left half-written" in err
    assert list(tmp_path.iterdir()) == []  # the partial directory was removed


def test_partial_directories_of_dead_exports_are_removed(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(done.stdout)
    final = tmp_path / "anyir-tiny-denoise25-onnx-fp32"
    stale = tmp_path / f".{final.name}.pid{dead}-abc123.partial"
    live = tmp_path / f".{final.name}.pid{os.getppid()}-def456.partial"
    other = tmp_path / f".other-bundle.pid{dead}-abc123.partial"
    for path in (stale, live, other):
        path.mkdir()
    assert remove_stale_partials(final) == [stale]
    assert live.is_dir() and other.is_dir() and not stale.exists()


def test_bundle_ships_no_local_path_and_gets_umask_permissions(built):
    build = str(built["build"].resolve())
    for file in built["bundle"].rglob("*"):
        if file.is_file():
            assert build.encode() not in file.read_bytes(), f"{file.name} names the build folder"
            assert str(Path.cwd().resolve()).encode() not in file.read_bytes() or file.name == VERIFY
    weights = json.loads((built["bundle"] / MANIFEST).read_text())["weights"]
    assert weights["file"] == "anyir-tiny.pth" and len(weights["file_sha256"]) == 64 and "path" not in weights
    umask = os.umask(0)
    os.umask(umask)
    assert built["bundle"].stat().st_mode & 0o777 == 0o777 & ~umask


def test_verify_finds_the_checkpoint_by_sha_on_this_machine_else_asks_for_it(built, bundle, monkeypatch, tmp_path):
    from edgeir.weights.checkpoint_index import cache_dir, find

    sha = json.loads((bundle / MANIFEST).read_text())["weights"]["file_sha256"]
    assert find(sha) == built["checkpoint"].resolve()  # export remembered it, outside the bundle
    assert edgeir.verify(bundle, photos=1).status == "passed"
    monkeypatch.setenv("EDGEIR_CACHE_DIR", str(tmp_path / "empty-cache"))  # another machine
    assert cache_dir() == tmp_path / "empty-cache"
    with pytest.raises(UsageError, match=r"records its checkpoint by name \(anyir-tiny.pth"):
        edgeir.verify(bundle, photos=1)


def test_report_ignores_stale_evidence_and_import_profile_records_the_digest(tmp_path):
    from edgeir.profiles.importing import import_profile
    from edgeir.report.build import report

    root = tmp_path / "artifacts"
    path = write_synthetic_bundle(root, "anyir-tiny-allinone3-onnx-fp32", latency_ms=[1, 2, 3])
    manifest = json.loads((path / MANIFEST).read_text())
    app = tmp_path / "app.json"
    app.write_text(json.dumps({"format": "edgeir-app-profile/1", "artifact_sha256": manifest["files"]["model.onnx"],
                               "device": {"id": "phone"}, "runtime": {"name": "onnxruntime"}, "samples_ms": [4.0]}))
    profile, _ = import_profile(path, app)
    assert profile.artifact_digest == artifact_digest(manifest["files"])
    verify = json.loads((path / VERIFY).read_text())
    (path / VERIFY).write_text(json.dumps({**verify, "artifact_digest": "cd" * 32}))
    result = report(root, output=tmp_path / "report", crop=False)
    assert any("verify.json ignored: stale: verify.json measured sha cdcdcdcdcdcd" in note for note in result.notes)
