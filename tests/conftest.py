import os

import pytest

os.environ.setdefault("EDGEIR_PROGRESS", "0")
# Export remembers checkpoint locations (edgeir.weights.checkpoint_index): keep the tests' out of the user's cache.
os.environ.setdefault("EDGEIR_CACHE_DIR", __import__("tempfile").mkdtemp(prefix="edgeir-test-cache-"))


@pytest.fixture(scope="session")
def torch_threads():
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    return torch.get_num_threads()


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """One ``tiny`` bundle per (method, target), exported once for the session and shared."""
    import edgeir

    root = tmp_path_factory.mktemp("bundles")
    cache = {}

    def get(method, target):
        if (method, target) not in cache:
            # Explicitly random: conformance checks the export machinery, whatever weights edgeir ships.
            cache[method, target] = edgeir.export(method, target, variant="tiny", output=root, weights="random")
        return cache[method, target]

    return get


def _registered_targets() -> list[str]:
    from edgeir.discovery import targets

    return targets().registry.names()


def pytest_configure(config):
    """One marker per registered target (``target_<name>``), so ``pytest -m target_onnx`` runs one flow of the grid."""
    for name in _registered_targets():
        config.addinivalue_line("markers", f"target_{name.replace('-', '_')}: exports or runs a {name} artifact")


def pytest_collection_modifyitems(config, items):
    """Mark every test parametrised with a ``target`` by that target's marker (the conformance and quantization
    grids), as ExecuTorch's backend suite marks each flow."""
    known = set(_registered_targets())
    for item in items:
        target = getattr(item, "callspec", None) and item.callspec.params.get("target")
        if isinstance(target, str) and target in known:
            item.add_marker(f"target_{target.replace('-', '_')}")
