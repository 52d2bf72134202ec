"""``edgeir report``: what a person looks at. Accuracy vs latency per device with the Pareto front,
side-by-side crops, the compute-quality curve of bundles with adaptive inference, as PNG files and
one self-contained HTML page.

Accuracy is the artifact's PSNR against the clean photos (``verify.json`` ``eval_psnr_db``) when every
bundle was exported from a checkpoint; with random-init weights that number is meaningless, so the
artifact's PSNR against its eager reference (``min_psnr_db``) is plotted instead and the page says so.
"""

from __future__ import annotations

import base64
import html
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgeir.bundle import MANIFEST, VERIFY, Bundle
from edgeir.errors import UsageError
from edgeir.integrity import EVIDENCE_FIELD, stale_reason
from edgeir.profiles.profile import Profile, bundle_profiles
from edgeir.report.plots import CropRow, Curve, Point, crops, pareto_front, scatter, tradeoff
from edgeir.target import unavailable

log = logging.getLogger(__name__)

CROP_PHOTO = "chelsea"
#: Thresholds ``adaptive_curves`` sweeps (the scale ``edgeir run --adaptive`` takes).
ADAPTIVE_THRESHOLDS = (0.5, 0.8, 0.9, 1.0, 1.05, 1.1, 1.15, 1.2, 1.3, 1.5, 2.0, 3.0)


@dataclass(frozen=True)
class ReportEntry:
    """One bundle and what was measured on it."""

    bundle: Bundle
    verify: dict[str, Any]
    profiles: dict[str, Profile]

    @property
    def group(self) -> str:
        m = self.bundle.manifest
        backend = f" {m['backend']}" if m.get("backend") and m["backend"] not in ("default", "onnxruntime") else ""
        return f"{m['target']}{backend} {m['quant']}"

    @property
    def label(self) -> str:
        m = self.bundle.manifest
        return f"{m['method']}-{m['variant']} {self.group}"


@dataclass(frozen=True)
class Report:
    """Paths of what ``report`` wrote."""

    html: Path
    pngs: tuple[Path, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)


def collect(artifacts: str | Path, *, trust_key: str | Path | None = None,
            notes: list[str] | None = None) -> list[ReportEntry]:
    """Every bundle under ``artifacts`` (directly or one level down) with its verification and profiles.

    Each bundle goes through the integrity check first: one that fails it is left out, and
    verify.json or a profile measured on another artifact is ignored; ``notes`` gets a sentence for each.

    Raises:
        UsageError: if there is no bundle there.
    """
    notes = notes if notes is not None else []
    root = Path(artifacts)
    manifests = sorted({*root.glob(f"*/{MANIFEST}"), *root.glob(MANIFEST)})
    if not manifests:
        raise UsageError(f"no bundles under {root} (looked for */{MANIFEST})")
    entries = []
    for manifest in manifests:
        try:
            bundle = Bundle.open(manifest.parent)
            digest = bundle.verified(trust_key)
            verify_path = bundle.path / VERIFY
            verify = json.loads(verify_path.read_text()) if verify_path.is_file() else {}
            profiles = bundle_profiles(bundle.path)
        except (UsageError, ValueError) as exc:
            notes.append(f"{manifest.parent.name}: left out: {exc}")
            continue
        stale = stale_reason(verify, digest, VERIFY) if verify else None
        if stale:
            notes.append(f"{bundle.path.name}: verify.json ignored: {stale}")
            verify = {}
        for device, profile in list(profiles.items()):
            stale = stale_reason({EVIDENCE_FIELD: profile.artifact_digest or None}, digest, f"profile {device}")
            if stale:
                notes.append(f"{bundle.path.name}: profile {device} ignored: {stale}")
                del profiles[device]
        entries.append(ReportEntry(bundle, verify, profiles))
    if not entries:
        raise UsageError(f"no bundle under {root} passed the integrity check: " + "; ".join(notes))
    return entries


def _accuracy(entries: list[ReportEntry]) -> tuple[str, str]:
    trained = all(e.bundle.manifest["weights"].get("source") == "checkpoint" for e in entries)
    if trained:
        return "eval_psnr_db", "PSNR vs clean photos (dB, eval set)"
    return "min_psnr_db", "PSNR vs eager fp32 reference (dB, min over photos)"


def points_by_device(entries: list[ReportEntry], field_name: str) -> tuple[dict[str, list[Point]], list[str]]:
    """Scatter points per device id, and sentences about bundles that have no point (and why)."""
    by_device: dict[str, list[Point]] = {}
    missing = []
    devices = sorted({d for e in entries for d in e.profiles if not e.profiles[d].not_run})
    for entry in entries:
        programs = entry.verify.get("programs", {})
        if entry.verify.get("status") == "not-run" or not programs:
            reason = entry.verify.get("reason") or "no verify.json (run 'edgeir verify')"
            missing.append(f"{entry.label}: no accuracy: {reason}")
        for device in devices:
            profile = entry.profiles.get(device)
            if profile is None:
                not_run = [p.not_run for p in entry.profiles.values() if p.not_run]
                missing.append(f"{entry.label}: no latency on {device}"
                               + (f": {not_run[0]}" if not_run else " (not profiled there)"))
                continue
            for program, result in programs.items():
                rows = [m for m in profile.measurements if m.program == program]
                if not rows or field_name not in result:
                    continue
                best = min(rows, key=lambda m: m.latency_ms()["p50"])
                label = entry.label + (f" [{program}]" if len(programs) > 1 else "") + f" t{best.threads}"
                by_device.setdefault(device, []).append(
                    Point(label, best.latency_ms()["p50"], float(result[field_name]), entry.group))
        if not devices:
            missing.append(f"{entry.label}: no latency (no profile; run 'edgeir profile')")
    for entry in entries:
        for profile in entry.profiles.values():
            if profile.not_run:
                missing.append(f"{entry.label}: no latency on {profile.device.id}: {profile.not_run}")
    return by_device, sorted(set(missing))


def crop_rows(entries: list[ReportEntry], photo: str = CROP_PHOTO, seed: int = 0) -> list[CropRow]:
    """Degraded, reference and artifact crops of one built-in photo for each bundle that has an image program."""
    from edgeir.data.photos import builtin_photos, degrade, fit_to
    from edgeir.discovery import targets
    from edgeir.runtime.reference import ReferenceRunner
    from edgeir.runtime.verify import reference_program

    photos = dict(builtin_photos())
    references: dict[tuple, np.ndarray] = {}
    rows = []
    for entry in entries:
        manifest = entry.bundle.manifest
        program = entry.bundle.programs[0]
        image = program["inputs"][0]
        if image["kind"] != "image" or len(program["inputs"]) != 1:
            continue
        _, channels, height, width = image["shape"]
        clean = fit_to(_downscale(photos[photo], 2 * max(height, width)), height, width)
        degraded, _ = degrade(clean, manifest["task"], seed)
        batch = np.ascontiguousarray(degraded.transpose(2, 0, 1)[None, :channels], dtype=np.float32)
        key = (manifest["method"], manifest["variant"], manifest["task"], manifest["weights"]["state_sha256"],
               program["name"], tuple(image["shape"]))
        if key not in references:
            try:
                module = reference_program(manifest, program["name"])
            except UsageError as exc:
                log.warning("no crops for %s: %s", entry.bundle.path.name, exc)
                continue
            references[key] = ReferenceRunner(module).run([batch])[0][0].transpose(1, 2, 0)
        target = targets().get(entry.bundle.target)
        runner = target.runtime(entry.bundle)
        missing = unavailable(runner)
        artifact = None if missing else runner.run(program["name"], [batch])[0][0].transpose(1, 2, 0)
        rows.append(CropRow(entry.label, degraded, references[key], artifact, missing.reason if missing else ""))
    return rows


def adaptive_curves(entries: list[ReportEntry], thresholds=ADAPTIVE_THRESHOLDS,
                    photos: int = 3) -> tuple[list[Curve], list[str]]:
    """The compute-quality sweep of every bundle whose method has adaptive inference (``MethodSpec.adaptive``).

    Each of the first ``photos`` built-in photos is centre-cropped to 2 x 2 program shapes, degraded
    for the task, and its four regions go through the method's controller at each threshold (as
    ``edgeir run --adaptive`` runs a tile); the controller's facts give the MACs spent and the full
    model's, and, where they name it (``full_program``), the program whose output is the full
    model's, run on the same regions for the reference point. Bundles whose controller refuses
    (no staged programs) or whose target cannot run here are noted and skipped.
    """
    from edgeir.data.photos import builtin_photos, degrade, fit_to
    from edgeir.discovery import methods, targets
    from edgeir.evaluation.metrics import psnr

    curves, notes = [], []
    for entry in entries:
        manifest = entry.bundle.manifest
        controller = methods().get(manifest["method"]).adaptive
        if controller is None:
            continue
        target = targets().get(entry.bundle.target)
        runner = target.runtime(entry.bundle)
        if missing := unavailable(runner):
            notes.append(f"{entry.label}: no adaptive curve: {missing.reason}")
            continue
        image = next((p["inputs"][0] for p in entry.bundle.programs if p["inputs"][0]["kind"] == "image"), None)
        if image is None:
            continue
        _, channels, height, width = image["shape"]
        try:
            run_regions = [controller(runner, manifest, t) for t in thresholds]
        except UsageError as exc:
            notes.append(f"{entry.label}: no adaptive curve: {exc}")
            continue
        spent = np.zeros(len(thresholds))
        full_spent = 0.0
        quality = np.zeros(len(thresholds))
        full_quality, full_program = [], None
        pictures = builtin_photos(photos)
        for index, (_, photo) in enumerate(pictures):
            clean = fit_to(photo, 2 * height, 2 * width)
            degraded, _ = degrade(clean, manifest["task"], index)
            truth = clean.transpose(2, 0, 1)[None, :channels]
            regions = [np.ascontiguousarray(degraded[r * height:(r + 1) * height, c * width:(c + 1) * width]
                                            .transpose(2, 0, 1)[None, :channels], dtype=np.float32)
                       for r in range(2) for c in range(2)]

            def joined(parts):
                return np.concatenate([np.concatenate(parts[0:2], axis=3), np.concatenate(parts[2:4], axis=3)],
                                      axis=2)

            for i, run_region in enumerate(run_regions):
                outs = []
                for region in regions:
                    out, facts = run_region(region)
                    outs.append(out)
                    spent[i] += facts["macs"]
                    if i == 0:
                        full_spent += facts["full_macs"]
                        full_program = facts.get("full_program")
                quality[i] += psnr(np.clip(joined(outs), 0, 1), truth) / len(pictures)
            if full_program:
                outs = [runner.run(full_program, [region])[0] for region in regions]
                full_quality.append(psnr(np.clip(joined(outs), 0, 1), truth))
        curves.append(Curve(entry.label, tuple(thresholds), tuple(float(x) for x in spent / full_spent),
                            tuple(float(q) for q in quality),
                            float(np.mean(full_quality)) if full_quality else None))
    return curves, notes


def _downscale(image: np.ndarray, short_side: int) -> np.ndarray:
    from PIL import Image

    h, w = image.shape[:2]
    if min(h, w) <= short_side:
        return image
    scale = short_side / min(h, w)
    pil = Image.fromarray(np.round(image * 255).astype(np.uint8)).resize(
        (round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)
    return np.asarray(pil, dtype=np.float32) / 255.0


def report(artifacts: str | Path = "artifacts", *, output: str | Path | None = None, crop: bool = True,
           adaptive: bool = True, trust_key: str | Path | None = None) -> Report:
    """Write the accuracy-vs-latency scatter of each device, the crops and ``report.html``.

    Args:
        artifacts: Directory holding bundles.
        output: Where to write (default ``<artifacts>/report``).
        crop: Also run each bundle on a photo crop (needs the reference model; slower).
        adaptive: Also sweep the thresholds of bundles with adaptive inference (:func:`adaptive_curves`).
        trust_key: ed25519 public key (PEM) every bundle must be signed with (others are left out).

    Returns:
        The paths written and the notes the page shows.

    Raises:
        UsageError: if there are no bundles under ``artifacts``.
    """
    integrity_notes: list[str] = []
    entries = collect(artifacts, trust_key=trust_key, notes=integrity_notes)
    out = Path(output) if output else Path(artifacts) / "report"
    out.mkdir(parents=True, exist_ok=True)
    field_name, accuracy_label = _accuracy(entries)
    by_device, missing = points_by_device(entries, field_name)
    notes = integrity_notes + list(missing)
    if field_name == "min_psnr_db":
        notes.insert(0, "Weights are a random initialisation (or not all bundles have a checkpoint): accuracy is "
                        "the artifact's PSNR against its eager fp32 reference, not restoration quality "
                        "(200 dB means identical).")
    host_devices = {d: p.device for e in entries for d, p in e.profiles.items()}
    pngs = []
    for device, points in sorted(by_device.items()):
        info = host_devices[device]
        where = "this host, not the target device" if info.kind == "host" else "target device"
        title = f"{device} ({info.chip}, {info.os}; {where})"
        device_notes = [n for n in missing if device in n or "no accuracy" in n]
        pngs.append(scatter(points, title, accuracy_label, device_notes, out / f"accuracy-latency-{device}.png"))
    if not by_device:
        pngs.append(scatter([], "no device", accuracy_label, missing, out / "accuracy-latency-none.png"))
    if crop:
        rows = crop_rows(entries)
        if rows:
            title = f"'{CROP_PHOTO}' crop at the programs' input size (nearest-neighbour zoom)"
            if field_name == "min_psnr_db":
                title += "\nrandom-init weights: the reference does not restore; the artifact must match it"
            pngs.append(crops(rows, title, out / "crops.png"))
    curves: list[Curve] = []
    if adaptive:
        curves, curve_notes = adaptive_curves(entries)
        notes += curve_notes
        if curves:
            title = "Adaptive inference: PSNR vs MACs spent, per threshold (built-in photos, 4 regions each)"
            if field_name == "min_psnr_db":
                title += "\nrandom-init weights: the PSNR says nothing about restoration"
            pngs.append(tradeoff(curves, title, out / "adaptive-tradeoff.png"))
    page = out / "report.html"
    page.write_text(_html(entries, by_device, pngs, notes, accuracy_label, curves))
    return Report(page, tuple(pngs), tuple(notes))


def _curve_table(curves) -> str:
    if not curves:
        return "<p>no bundle with adaptive inference</p>"
    esc = html.escape
    rows = []
    for curve in curves:
        cells = "".join(f"<tr><td>{esc(curve.label)}</td><td>{t:g}</td><td>{c:.3f}</td><td>{q:.3f}</td>"
                        f"<td>{'' if curve.full_db is None else f'{q - curve.full_db:+.3f}'}</td></tr>"
                        for t, c, q in zip(curve.thresholds, curve.compute, curve.accuracy_db, strict=True))
        rows.append(cells)
    return ("<table><tr><th>bundle</th><th>threshold</th><th>MACs vs full model</th><th>PSNR (dB)</th>"
            f"<th>vs full model (dB)</th></tr>{''.join(rows)}</table>")


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">'


def _html(entries, by_device, pngs, notes, accuracy_label, curves=()) -> str:
    esc = html.escape
    rows = []
    for entry in entries:
        verify = entry.verify
        accuracy = ", ".join(f"{name}: {p.get('min_psnr_db', '-')} dB" for name, p in verify.get("programs", {}).items()
                             ) or esc(verify.get("reason", "not verified"))
        latency = []
        for device, profile in sorted(entry.profiles.items()):
            if profile.not_run:
                latency.append(f"{esc(device)}: not measured ({esc(profile.not_run)})")
                continue
            for m in profile.measurements:
                lat = m.latency_ms()
                latency.append(f"{esc(device)} [{profile.device.kind}] {esc(m.program)} t{m.threads}: "
                               f"p50 {lat['p50']:.2f} ms, p90 {lat['p90']:.2f} ms")
        size = sum((entry.bundle.path / f).stat().st_size for f in entry.bundle.manifest.get("files", {})) / 1e6
        rows.append(f"<tr><td>{esc(entry.bundle.path.name)}</td><td>{esc(accuracy)}</td>"
                    f"<td>{'<br>'.join(latency) or 'no profile'}</td><td>{size:.2f}</td></tr>")
    fronts = []
    for device, points in sorted(by_device.items()):
        front = ", ".join(f"{esc(p.label)} ({p.latency_ms:.1f} ms, {p.accuracy_db:.1f} dB)"
                          for p in pareto_front(points))
        fronts.append(f"<li><b>{esc(device)}</b>: {front}</li>")
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgeir report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}}
img{{max-width:100%;border:1px solid #ddd;margin:0.5em 0}}table{{border-collapse:collapse;font-size:0.85em}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}.note{{color:#555;font-size:0.9em}}</style>
</head><body>
<h1>edgeir report</h1>
<p class="note">Generated {created}. Accuracy axis: {esc(accuracy_label)}. Latency: p50 of the fastest thread count
measured; a profile made by <code>edgeir profile</code> is measured on <b>this host, not on a phone</b>.</p>
<ul class="note">{''.join(f'<li>{esc(n)}</li>' for n in notes)}</ul>
<h2>Accuracy vs latency</h2>
<ul>{''.join(fronts) or '<li>no latency measured</li>'}</ul>
{''.join(_img(p) for p in pngs if p.name.startswith('accuracy'))}
<h2>Adaptive inference</h2>
{_curve_table(curves)}
{''.join(_img(p) for p in pngs if p.name == 'adaptive-tradeoff.png')}
<h2>Crops</h2>
{''.join(_img(p) for p in pngs if p.name == 'crops.png') or '<p>no crops</p>'}
<h2>Bundles</h2>
<table><tr><th>bundle</th><th>PSNR vs reference</th><th>latency</th><th>size (MB)</th></tr>
{''.join(rows)}</table>
</body></html>
"""
