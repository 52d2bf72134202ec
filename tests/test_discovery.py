from importlib.metadata import EntryPoint

import pytest

from edgeir.discovery import METHODS_GROUP, load_group
from edgeir.errors import PluginLoadError, UnknownNameError
from edgeir.method import MethodSpec

ANYIR = "edgeir.plugins.anyir:SPEC"


def entry(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=METHODS_GROUP)


def test_builtin_loads_through_entry_point():
    found = load_group(METHODS_GROUP, MethodSpec, "method", [entry("anyir", ANYIR)])
    assert found.registry.names() == ["anyir"]
    assert not found.failures


def test_broken_plugin_is_reported_and_others_still_load():
    found = load_group(METHODS_GROUP, MethodSpec, "method",
                       [entry("broken", "edgeir_no_such_module:SPEC"), entry("anyir", ANYIR)])
    assert found.registry.names() == ["anyir"]
    assert "ModuleNotFoundError" in found.failures["broken"].error
    with pytest.raises(PluginLoadError, match="broken.*edgeir_no_such_module"):
        found.get("broken")


def test_wrong_type_is_a_load_failure():
    found = load_group(METHODS_GROUP, MethodSpec, "method", [entry("errors", "edgeir.errors:EdgeirError")])
    assert "not a MethodSpec" in found.failures["errors"].error
    assert found.registry.names() == []


def test_name_mismatch_is_a_load_failure():
    found = load_group(METHODS_GROUP, MethodSpec, "method", [entry("notanyir", ANYIR)])
    assert "calls itself 'anyir'" in found.failures["notanyir"].error


def test_duplicate_name_disables_only_its_claimants_and_names_both_sources():
    found = load_group(METHODS_GROUP, MethodSpec, "method",
                       [entry("anyir", ANYIR), entry("restormer", "edgeir.plugins.restormer:SPEC"),
                        entry("anyir", "third_party_anyir:SPEC")])
    assert found.registry.names() == ["restormer"]  # the other method keeps working
    with pytest.raises(PluginLoadError, match="declared 2 times.*edgeir.plugins.anyir:SPEC.*third_party_anyir:SPEC"):
        found.get("anyir")


def test_duplicate_name_makes_the_cli_fail_only_for_that_name(monkeypatch, capsys):
    from edgeir import discovery
    from edgeir.cli import main

    real = discovery.metadata.entry_points

    def with_a_second_anyir(group=None, **kw):
        eps = list(real(group=group, **kw))
        if group == METHODS_GROUP:
            eps.append(entry("anyir", "third_party_anyir:SPEC"))
        return eps

    discovery.methods.cache_clear()
    monkeypatch.setattr(discovery.metadata, "entry_points", with_a_second_anyir)
    try:
        assert main(["list"]) == 0
        assert "declared 2 times" in capsys.readouterr().out
        assert main(["export", "anyir", "--target", "onnx", "--variant", "tiny", "-o", "/nonexistent"]) == 3
        assert "third_party_anyir" in capsys.readouterr().err
        assert discovery.methods().get("nafnet").name == "nafnet"
    finally:
        discovery.methods.cache_clear()


def test_unknown_method_lists_installed_ones():
    found = load_group(METHODS_GROUP, MethodSpec, "method", [entry("anyir", ANYIR)])
    with pytest.raises(UnknownNameError, match="valid: anyir"):
        found.get("anyi")
