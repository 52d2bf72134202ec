import pytest

from edgeir.errors import PluginLoadError, UnknownNameError
from edgeir.registry import Registry


def test_get_returns_registered_object():
    registry = Registry("method")
    registry.add("anyir", 1, "a")
    assert registry.get("anyir") == 1
    assert "anyir" in registry and len(registry) == 1


def test_duplicate_names_both_sources():
    registry = Registry("method")
    registry.add("anyir", 1, "built-in edgeir")
    with pytest.raises(PluginLoadError, match="built-in edgeir.*third-party"):
        registry.add("anyir", 2, "third-party")
    assert registry.get("anyir") == 1


def test_unknown_name_lists_valid_sorted_with_close_match():
    registry = Registry("target")
    for name in ("onnx", "coreml", "executorch"):
        registry.add(name, name, "test")
    with pytest.raises(UnknownNameError) as info:
        registry.get("coremll")
    message = str(info.value)
    assert "valid: coreml, executorch, onnx" in message
    assert "did you mean 'coreml'" in message
