"""Gates: rules over bundles, their verification and their profiles, read from a TOML file.

See ``docs/gates.md`` for the file format. Evaluation returns values; ``edgeir.gates.render`` renders
the table, JUnit XML and Markdown summary.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeir.bundle import MANIFEST, VERIFY, Bundle
from edgeir.errors import GateFileError, IntegrityError, UsageError
from edgeir.integrity import EVIDENCE_FIELD, stale_reason
from edgeir.profiles.profile import Profile, bundle_profiles

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

GATE_KEYS = {"artifacts", "junit", "markdown", "name"}
FILTER_KEYS = ("method", "variant", "task", "target", "backend", "quant")
RULE_KEYS = {"name", "bundle", "metric", "min", "max", "program", "device", "threads", "allow_empty", *FILTER_KEYS}
LATENCY_METRICS = {"latency_p50_ms": "p50", "latency_p90_ms": "p90", "latency_max_ms": "max"}
METRICS = {
    "psnr_vs_reference_db": "lowest PSNR of the artifact against the eager reference (verify.json)",
    "psnr_drop_db": "reference PSNR minus artifact PSNR against the clean photos (verify.json), mean over photos",
    "eval_psnr_db": "artifact PSNR against the clean photos of the eval set (verify.json), mean over photos",
    **{name: f"{stat} latency in ms on the rule's device (profiles/)" for name, stat in LATENCY_METRICS.items()},
    "peak_memory_mb": "peak memory in MiB on the rule's device (profiles/)",
    "size_mb": "size of the artifact files in MB (10^6 bytes)",
    "delegation_coverage": "share of graph nodes an ExecuTorch delegate took, 0..1 (manifest)",
}


@dataclass(frozen=True)
class Rule:
    """One ``[[rule]]`` of a gate file, with the line it starts on."""

    name: str
    bundle: str
    metric: str
    line: int
    min: float | None = None
    max: float | None = None
    program: str | None = None
    device: str = "host"
    threads: int | None = None
    filters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    allow_empty: bool = False

    def limit(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return " and ".join(parts)


@dataclass(frozen=True)
class RuleResult:
    """A rule checked on one bundle: ``status`` is "passed", "failed" or "skipped" (does not apply)."""

    rule: Rule
    bundle: str
    status: str
    value: float | None
    message: str


@dataclass(frozen=True)
class GateReport:
    """Every rule result of one gate file."""

    path: Path
    name: str
    results: tuple[RuleResult, ...]
    junit: Path
    markdown: Path

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.results if r.status == "failed"]


@dataclass(frozen=True)
class GateFile:
    """A parsed gate file."""

    path: Path
    name: str
    artifacts: Path
    junit: Path
    markdown: Path
    rules: tuple[Rule, ...]


def _key_line(lines: list[str], key: str, start: int, stop: int) -> int:
    pattern = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
    for number in range(start, min(stop, len(lines))):
        if pattern.match(lines[number]):
            return number + 1
    return start + 1


def _table_lines(lines: list[str], header: str) -> list[int]:
    pattern = re.compile(rf"^\s*{re.escape(header)}\s*(#.*)?$")
    return [i for i, line in enumerate(lines) if pattern.match(line)]


def load_gate_file(path: str | Path) -> GateFile:
    """Parse and check a gate file.

    Raises:
        GateFileError: for invalid TOML, an unknown table or key, a missing or wrong value, or a rule whose
            bundle glob matches nothing; the message names the file and line.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise GateFileError(f"cannot read gate file {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GateFileError(f"{path} is not valid TOML: {exc}") from exc
    lines = text.splitlines()

    def fail(line: int, message: str) -> GateFileError:
        return GateFileError(f"{path}:{line}: {message}")

    for key in data:
        if key not in ("gate", "rule"):
            raise fail(_key_line(lines, key, 0, len(lines)) if key not in text.split("[")[0] else 1,
                       f"unknown table or key '{key}' (a gate file has [gate] and [[rule]] tables)")
    gate = data.get("gate", {})
    gate_start = (_table_lines(lines, "[gate]") or [0])[0]
    if not isinstance(gate, dict):
        raise fail(1, "'gate' must be a table: [gate]")
    for key in gate:
        if key not in GATE_KEYS:
            raise fail(_key_line(lines, key, gate_start, len(lines)),
                       f"unknown key '{key}' in [gate]; known keys: {', '.join(sorted(GATE_KEYS))}")
    base = path.parent
    artifacts = base / str(gate.get("artifacts", "artifacts"))
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list) or not raw_rules:
        raise fail(1, "no rules: add at least one [[rule]] table")
    starts = _table_lines(lines, "[[rule]]")
    starts += [len(lines)] * (len(raw_rules) + 1 - len(starts))
    rules = [_parse_rule(raw, index, starts[index], starts[index + 1], lines, artifacts, fail)
             for index, raw in enumerate(raw_rules)]
    return GateFile(path=path, name=str(gate.get("name", path.stem)), artifacts=artifacts,
                    junit=base / str(gate.get("junit", f"{path.stem}-junit.xml")),
                    markdown=base / str(gate.get("markdown", f"{path.stem}-summary.md")), rules=tuple(rules))


def _parse_rule(raw: dict[str, Any], index: int, start: int, stop: int, lines: list[str], artifacts: Path,
                fail) -> Rule:
    line = start + 1

    def at(key: str) -> int:
        return _key_line(lines, key, start, stop)

    for key in raw:
        if key not in RULE_KEYS:
            raise fail(at(key), f"unknown key '{key}' in rule {index + 1}; known keys: {', '.join(sorted(RULE_KEYS))}")
    for key in ("bundle", "metric"):
        if key not in raw:
            raise fail(line, f"rule {index + 1} has no '{key}'")
    for key in ("name", "bundle", "metric", "program", "device"):
        if key in raw and not isinstance(raw[key], str):
            raise fail(at(key), f"'{key}' must be a string, got {raw[key]!r}")
    for key in FILTER_KEYS:
        value = raw.get(key, "")
        strings = isinstance(value, list) and value and all(isinstance(v, str) for v in value)
        if not (isinstance(value, str) or strings):
            raise fail(at(key), f"'{key}' must be a string or a list of strings, got {value!r}")
    metric = raw["metric"]
    if metric not in METRICS:
        raise fail(at("metric"), f"unknown metric '{metric}'; metrics: {', '.join(METRICS)}")
    for key in ("min", "max"):
        if key in raw and (isinstance(raw[key], bool) or not isinstance(raw[key], (int, float))):
            raise fail(at(key), f"'{key}' must be a number, got {raw[key]!r}")
    if "min" not in raw and "max" not in raw:
        raise fail(line, f"rule {index + 1} has neither 'min' nor 'max'")
    for key in ("min", "max"):
        if key in raw and not math.isfinite(raw[key]):
            raise fail(at(key), f"'{key}' must be a finite number, got {raw[key]!r}")
    if "min" in raw and "max" in raw and raw["min"] > raw["max"]:
        raise fail(at("max"), f"rule {index + 1}: min {raw['min']:g} is above max {raw['max']:g}; no value can pass")
    if "allow_empty" in raw and not isinstance(raw["allow_empty"], bool):
        raise fail(at("allow_empty"), f"'allow_empty' must be true or false, got {raw['allow_empty']!r}")
    if "threads" in raw and (isinstance(raw["threads"], bool) or not isinstance(raw["threads"], int)):
        raise fail(at("threads"), f"'threads' must be an integer, got {raw['threads']!r}")
    if not any(fnmatch.fnmatch(p.parent.name, raw["bundle"]) for p in artifacts.glob(f"*/{MANIFEST}")):
        raise fail(at("bundle"), f"no bundle matches '{raw['bundle']}' in {artifacts}")
    return Rule(name=raw.get("name", f"{metric} {raw['bundle']}"), bundle=raw["bundle"], metric=metric, line=line,
                min=raw.get("min"), max=raw.get("max"), program=raw.get("program"),
                device=raw.get("device", "host"), threads=raw.get("threads"),
                filters={k: (raw[k],) if isinstance(raw[k], str) else tuple(raw[k]) for k in FILTER_KEYS if k in raw},
                allow_empty=raw.get("allow_empty", False))


def run_gate(path: str | Path, *, junit: str | Path | None = None, markdown: str | Path | None = None,
             trust_key: str | Path | None = None) -> GateReport:
    """Check every rule of a gate file and write the JUnit XML and Markdown summary.

    Args:
        path: Gate file (TOML).
        junit: Where to write JUnit XML (default: the file's ``[gate] junit``, else ``<stem>-junit.xml`` beside it).
        markdown: Where to write the Markdown summary (default likewise, ``<stem>-summary.md``).
        trust_key: ed25519 public key (PEM) every bundle must be signed with.

    Every bundle goes through the integrity check (:mod:`edgeir.integrity`) first: a rule fails on a
    bundle that fails it, on evidence (verify.json, a profile) measured on another artifact, and when
    its filters match no bundle at all (unless the rule says ``allow_empty = true``).

    Returns:
        The results; :attr:`GateReport.failed` lists the rules that did not hold.

    Raises:
        GateFileError: if the gate file is wrong (see :func:`load_gate_file`).
    """
    from edgeir.gates.render import junit_xml, markdown_summary

    gate = load_gate_file(path)
    results = []
    checked: dict[Path, tuple[Bundle, str] | str] = {}
    for rule in gate.rules:
        matched = 0
        for bundle_dir in sorted(p.parent for p in gate.artifacts.glob(f"*/{MANIFEST}")):
            if not fnmatch.fnmatch(bundle_dir.name, rule.bundle):
                continue
            if bundle_dir not in checked:
                checked[bundle_dir] = _open_checked(bundle_dir, trust_key)
            opened = checked[bundle_dir]
            if isinstance(opened, str):  # unreadable or failed the integrity check: every rule on it fails
                matched += 1
                results.append(RuleResult(rule, bundle_dir.name, "failed", None, opened))
                continue
            bundle, digest = opened
            if any(str(bundle.manifest.get(k)) not in values for k, values in rule.filters.items()):
                continue
            matched += 1
            results.append(check_rule(rule, bundle, digest))
        if not matched and not rule.allow_empty:
            filters = ", ".join(f"{k} = {'|'.join(v)}" for k, v in rule.filters.items())
            results.append(RuleResult(rule, rule.bundle, "failed", None,
                                      f"no bundle matches this rule ('{rule.bundle}'{', ' + filters if filters else ''}"
                                      f" in {gate.artifacts}); a typo would pass CI silently, so it fails "
                                      "(set allow_empty = true if that is intended)"))
    report = GateReport(path=gate.path, name=gate.name, results=tuple(results),
                        junit=Path(junit) if junit else gate.junit,
                        markdown=Path(markdown) if markdown else gate.markdown)
    report.junit.parent.mkdir(parents=True, exist_ok=True)
    report.junit.write_text(junit_xml(report))
    report.markdown.parent.mkdir(parents=True, exist_ok=True)
    report.markdown.write_text(markdown_summary(report))
    return report


def _open_checked(bundle_dir: Path, trust_key: str | Path | None) -> tuple[Bundle, str] | str:
    """The opened bundle and its checked artifact digest, or the one-sentence reason it cannot be trusted."""
    try:
        bundle = Bundle.open(bundle_dir)
        return bundle, bundle.verified(trust_key)
    except IntegrityError as exc:
        return f"integrity: {exc}"
    except UsageError as exc:
        return str(exc)


def check_rule(rule: Rule, bundle: Bundle, digest: str | None = None) -> RuleResult:
    """Measure ``rule.metric`` on ``bundle`` and compare it with the rule's limits.

    ``digest`` is the bundle's artifact digest from the integrity check (computed here when None).
    """
    try:
        digest = digest if digest is not None else bundle.verified()
        value, where = metric_value(rule, bundle, digest)
    except IntegrityError as exc:
        return RuleResult(rule, bundle.path.name, "failed", None, f"integrity: {exc}")
    except Stale as exc:
        return RuleResult(rule, bundle.path.name, "failed", None, str(exc))
    except NotMeasured as exc:
        return RuleResult(rule, bundle.path.name, "failed", None, f"not measured: {exc}")
    except NotApplicable as exc:
        return RuleResult(rule, bundle.path.name, "skipped", None, str(exc))
    ok = (rule.min is None or value >= rule.min) and (rule.max is None or value <= rule.max)
    text = f"{value:.4g} {'meets' if ok else 'violates'} {rule.limit()}" + (f" ({where})" if where else "")
    return RuleResult(rule, bundle.path.name, "passed" if ok else "failed", value, text)


class NotMeasured(Exception):
    """The metric needs a measurement the bundle does not have (no verify.json, no profile)."""


class Stale(NotMeasured):
    """The evidence (verify.json, a profile) was measured on another artifact than the bundle's."""


class NotApplicable(Exception):
    """The metric does not apply to this bundle (delegation coverage of an ONNX model)."""


def metric_value(rule: Rule, bundle: Bundle, digest: str) -> tuple[float, str]:
    """The rule's metric on ``bundle`` (the worst over programs when the rule names none), and where from.

    ``digest`` is the bundle's artifact digest; evidence that records another is refused as stale.

    Raises:
        Stale: if the verify.json or profile it needs was measured on another artifact.
        NotMeasured: if the verification or profile it needs is missing or could not run here.
        NotApplicable: if the metric does not exist for this kind of bundle.
    """
    metric = rule.metric
    if metric == "size_mb":
        return sum((bundle.path / name).stat().st_size for name in bundle.manifest.get("files", {})) / 1e6, ""
    if metric == "delegation_coverage":
        delegation = bundle.delegation
        if not delegation:
            raise NotApplicable(f"{bundle.target} bundles have no delegation summary")
        programs = {k: v for k, v in delegation.items() if rule.program in (None, k)}
        if not programs:
            raise NotMeasured(f"no program '{rule.program}' in the delegation summary")
        return min(v["coverage"] for v in programs.values()), ""
    if metric in ("psnr_vs_reference_db", "psnr_drop_db", "eval_psnr_db"):
        return _verify_metric(rule, bundle, digest)
    return _profile_metric(rule, bundle, digest)


def _verify_metric(rule: Rule, bundle: Bundle, digest: str) -> tuple[float, str]:
    path = bundle.path / VERIFY
    if not path.is_file():
        raise NotMeasured(f"no {VERIFY}; run 'edgeir verify {bundle.path}'")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise NotMeasured(f"cannot read {VERIFY}: {exc}") from exc
    stale = stale_reason(data, digest, VERIFY)
    if stale:
        raise Stale(stale)
    if data.get("status") == "not-run":
        raise NotMeasured(f"verification did not run: {data.get('reason', '')}")
    field_name = {"psnr_vs_reference_db": "min_psnr_db"}.get(rule.metric, rule.metric)
    values = {name: p[field_name] for name, p in data.get("programs", {}).items()
              if rule.program in (None, name) and field_name in p}
    if not values:
        raise NotMeasured(f"{VERIFY} has no '{field_name}'" + (f" for program '{rule.program}'" if rule.program else "")
                          + "; re-run 'edgeir verify'")
    worst = max if rule.metric == "psnr_drop_db" else min
    name = worst(values, key=values.get)
    return float(values[name]), f"program {name}"


def find_profile(bundle: Bundle, device: str) -> Profile | None:
    """The bundle's profile from ``device`` (an id, or "host" for one measured on this host)."""
    profiles = bundle_profiles(bundle.path)
    if device in profiles:
        return profiles[device]
    if device == "host":
        host = [p for p in profiles.values() if p.device.kind == "host"]
        return max(host, key=lambda p: p.created) if host else None
    return None


def _profile_metric(rule: Rule, bundle: Bundle, digest: str) -> tuple[float, str]:
    try:
        profile = find_profile(bundle, rule.device)
    except UsageError as exc:
        raise NotMeasured(str(exc)) from exc
    if profile is None:
        raise NotMeasured(f"no profile from device '{rule.device}' in {bundle.path.name}/profiles")
    stale = stale_reason({EVIDENCE_FIELD: profile.artifact_digest or None}, digest, f"profile {profile.device.id}")
    if stale:
        raise Stale(stale)
    if profile.not_run:
        raise NotMeasured(f"profile on {profile.device.id} did not run: {profile.not_run}")
    rows = [m for m in profile.measurements if rule.program in (None, m.program)
            and (rule.threads is None or m.threads == rule.threads)]
    if not rows:
        raise NotMeasured(f"profile {profile.device.id} has no measurement for program {rule.program or 'any'} "
                          f"at threads {rule.threads if rule.threads is not None else 'any'}")
    if rule.metric == "peak_memory_mb":
        memory = [m for m in rows if m.peak_memory_mb is not None]
        if not memory:
            raise NotMeasured(f"profile {profile.device.id} has no peak memory")
        worst = max(memory, key=lambda m: m.peak_memory_mb)
        return float(worst.peak_memory_mb), f"{profile.device.id}, {worst.program}, threads {worst.threads}"
    stat = LATENCY_METRICS[rule.metric]
    # Without 'threads', each program counts at its fastest thread count (what an app would ship).
    best: dict[str, Any] = {}
    for m in rows:
        if m.program not in best or m.latency_ms()[stat] < best[m.program].latency_ms()[stat]:
            best[m.program] = m
    worst = max(best.values(), key=lambda m: m.latency_ms()[stat])
    return worst.latency_ms()[stat], f"{profile.device.id}, {worst.program}, threads {worst.threads}"
