"""Gate files: rules passing and failing, malformed files (exit 2, with the line), JUnit XML and Markdown."""

import xml.etree.ElementTree as ET

import pytest
from helpers import write_synthetic_bundle

from edgeir.cli import main
from edgeir.errors import GateFileError
from edgeir.gates.rules import load_gate_file, run_gate


@pytest.fixture()
def artifacts(tmp_path):
    root = tmp_path / "artifacts"
    write_synthetic_bundle(root, "anyir-tiny-allinone3-onnx-fp32", latency_ms=[10, 11, 12, 13, 30])
    write_synthetic_bundle(root, "anyir-tiny-allinone3-executorch-fp32", target="executorch", backend="xnnpack",
                           payload=b"pte" * 1000, coverage=0.95, latency_ms=[5, 6, 7])
    write_synthetic_bundle(root, "anyir-tiny-allinone3-coreml-fp16", target="coreml", backend="mlprogram",
                           quant="fp16", verify_status="not-run")
    return root


def gate_file(tmp_path, body, header='[gate]\nartifacts = "artifacts"\nname = "ci"\n'):
    path = tmp_path / "gates.toml"
    path.write_text(header + body)
    return path


PASSING = """
[[rule]]
name = "matches reference"
bundle = "anyir-tiny-*-fp32"
metric = "psnr_vs_reference_db"
min = 60

[[rule]]
name = "small drop"
bundle = "anyir-tiny-*-fp32"
metric = "psnr_drop_db"
max = 0.5

[[rule]]
bundle = "anyir-tiny-*-fp32"
metric = "eval_psnr_db"
min = 25

[[rule]]
name = "fast on host"
bundle = "anyir-tiny-*-fp32"
target = ["onnx", "executorch"]
metric = "latency_p50_ms"
device = "host"
max = 20

[[rule]]
bundle = "*-onnx-fp32"
metric = "latency_p90_ms"
device = "host-test-cpu-2c"
threads = 1
max = 40

[[rule]]
bundle = "*"
metric = "size_mb"
max = 1

[[rule]]
name = "mostly delegated"
bundle = "*"
target = "executorch"
metric = "delegation_coverage"
min = 0.9
"""


def test_passing_gate_writes_valid_junit_and_markdown(artifacts, tmp_path):
    report = run_gate(gate_file(tmp_path, PASSING))
    assert not report.failed, [r.message for r in report.failed]
    assert len(report.results) == 2 + 2 + 2 + 2 + 1 + 3 + 1
    suite = ET.parse(report.junit).getroot().find("testsuite")
    assert suite.get("tests") == str(len(report.results)) and suite.get("failures") == "0"
    assert len(suite.findall("testcase")) == len(report.results)
    assert not suite.findall("testcase/failure")
    markdown = report.markdown.read_text()
    assert markdown.startswith("## Gate ci") and markdown.count("| PASS |") == len(report.results)
    assert main(["gate", str(report.path)]) == 0


def test_failing_rules_exit_1_and_mark_failures(artifacts, tmp_path, capsys):
    body = PASSING + """
[[rule]]
name = "impossible latency"
bundle = "anyir-tiny-*-fp32"
metric = "latency_p50_ms"
max = 1

[[rule]]
name = "coreml latency"
bundle = "*-coreml-fp16"
metric = "latency_p50_ms"
max = 100

[[rule]]
name = "coreml accuracy"
bundle = "*-coreml-fp16"
metric = "psnr_vs_reference_db"
min = 40

[[rule]]
name = "onnx delegation"
bundle = "*-onnx-fp32"
metric = "delegation_coverage"
min = 0.9
"""
    path = gate_file(tmp_path, body)
    junit = tmp_path / "out" / "junit.xml"
    assert main(["gate", str(path), "--junit", str(junit)]) == 1
    out, err = capsys.readouterr()
    assert "FAIL  impossible latency" in out and "4 failed" in out and "1 skipped" in out
    assert "gate check(s) failed" in err
    suite = ET.parse(junit).getroot().find("testsuite")
    failures = suite.findall("testcase/failure")
    assert suite.get("failures") == "4" and len(failures) == 4
    assert len(suite.findall("testcase/skipped")) == 1 and suite.get("skipped") == "1"
    messages = " ".join(f.get("message") for f in failures)
    assert "violates <= 1" in messages and "did not run" in messages and "no profile" in messages


@pytest.mark.parametrize(("body", "line", "words"), [
    ('\n[[rule]]\nbundle = "*"\nmetric = "size_mb"\nmax = 1\nmaximum = 2\n', 9, "unknown key 'maximum'"),
    ('\n[[rule]]\nbundle = "nothing-*"\nmetric = "size_mb"\nmax = 1\n', 6, "no bundle matches 'nothing-*'"),
    ('\n[[rule]]\nbundle = "*"\nmetric = "speed"\nmax = 1\n', 7, "unknown metric 'speed'"),
    ('\n[[rule]]\nbundle = "*"\nmetric = "size_mb"\n', 5, "neither 'min' nor 'max'"),
    ('\n[[rule]]\nbundle = "*"\nmetric = "size_mb"\nmax = "1"\n', 8, "'max' must be a number"),
    ('\n[[rule]]\nmetric = "size_mb"\nmax = 1\n', 5, "has no 'bundle'"),
    ('\n[[rule]]\nbundle = "*"\nmetric = "size_mb"\nmax = 1\ntarget = 3\n', 9, "'target' must be a string or a list"),
    ('\n[[rules]]\nbundle = "*"\n', None, "unknown table or key 'rules'"),
])
def test_malformed_gate_files_exit_2_with_the_line(artifacts, tmp_path, capsys, body, line, words):
    path = gate_file(tmp_path, body)
    with pytest.raises(GateFileError, match=words.replace("*", r"\*")) as info:
        load_gate_file(path)
    if line is not None:
        assert f"gates.toml:{line}:" in str(info.value)
    assert main(["gate", str(path)]) == 2
    assert words in capsys.readouterr().err


def test_unknown_gate_key_and_invalid_toml(artifacts, tmp_path, capsys):
    path = gate_file(tmp_path, PASSING, header='[gate]\nartifacts = "artifacts"\njunit_path = "x.xml"\n')
    assert main(["gate", str(path)]) == 2
    assert "gates.toml:3: unknown key 'junit_path' in [gate]" in capsys.readouterr().err
    path.write_text("this is = not [valid\n")
    assert main(["gate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "not valid TOML" in err and "line 1" in err
    assert main(["gate", str(tmp_path / "missing.toml")]) == 2


def test_gating_loads_no_heavy_sdk():
    import subprocess
    import sys

    probe = ("import sys\nfrom edgeir.gates.rules import run_gate\nimport edgeir.gates.render\n"
             "print(','.join(m for m in ('torch', 'executorch', 'onnxruntime', 'coremltools') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == ""
