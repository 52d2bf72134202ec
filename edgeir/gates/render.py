"""Renderings of a gate report: a text table for the terminal, JUnit XML for CI, Markdown for people."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from edgeir.gates.rules import GateReport, RuleResult

STATUS_MARK = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}


def _value(result: RuleResult) -> str:
    return "-" if result.value is None else f"{result.value:.4g}"


def _rows(report: GateReport) -> list[tuple[str, ...]]:
    return [(STATUS_MARK[r.status], r.rule.name, r.bundle, r.rule.metric, _value(r), r.rule.limit(), r.message)
            for r in report.results]


def text_table(report: GateReport) -> str:
    """A fixed-width table of every rule x bundle, then a one-line tally."""
    header = ("", "rule", "bundle", "metric", "value", "limit", "detail")
    rows = [header, *_rows(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
             for row in rows]
    return "\n".join(line.rstrip() for line in lines) + "\n" + tally(report)


def tally(report: GateReport) -> str:
    counts = {s: sum(r.status == s for r in report.results) for s in STATUS_MARK}
    return (f"{report.name}: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped "
            f"({len(report.results)} checks)")


def junit_xml(report: GateReport) -> str:
    """JUnit XML: one ``testsuite``, one ``testcase`` per rule x bundle, ``failure``/``skipped`` children."""
    suite = ET.Element("testsuite", name=report.name, tests=str(len(report.results)),
                       failures=str(len(report.failed)), errors="0",
                       skipped=str(sum(r.status == "skipped" for r in report.results)))
    for result in report.results:
        case = ET.SubElement(suite, "testcase", name=f"{result.rule.name} [{result.bundle}]",
                             classname=f"edgeir.gate.{result.rule.metric}", file=str(report.path),
                             line=str(result.rule.line))
        if result.status == "failed":
            failure = ET.SubElement(case, "failure", message=result.message, type=result.rule.metric)
            failure.text = f"{result.rule.metric} = {_value(result)}, limit {result.rule.limit()}: {result.message}"
        elif result.status == "skipped":
            ET.SubElement(case, "skipped", message=result.message)
        ET.SubElement(case, "system-out").text = result.message
    root = ET.Element("testsuites", name=report.name, tests=suite.get("tests"), failures=suite.get("failures"))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def markdown_summary(report: GateReport) -> str:
    """A Markdown table (for a CI job summary or a pull-request comment)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [f"## Gate {cell(report.name)}", "", tally(report), "",
             "| | rule | bundle | metric | value | limit | detail |", "|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in _rows(report)]
    return "\n".join(lines) + "\n"
