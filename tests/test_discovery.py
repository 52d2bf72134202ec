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


def test_duplicate_entry_point_names_raise():
    with pytest.raises(PluginLoadError, match="declared twice"):
        load_group(METHODS_GROUP, MethodSpec, "method", [entry("anyir", ANYIR), entry("anyir", ANYIR)])


def test_unknown_method_lists_installed_ones():
    found = load_group(METHODS_GROUP, MethodSpec, "method", [entry("anyir", ANYIR)])
    with pytest.raises(UnknownNameError, match="valid: anyir"):
        found.get("anyi")
