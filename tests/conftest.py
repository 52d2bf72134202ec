import functools
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
def kit_exports(tmp_path_factory):
    """``kit_exports(method)``: the plugin kit's :class:`~edgeir.testing.conformance.Exports` of a method, one
    per session: each (method, target) ``tiny`` bundle is exported once, with explicitly random weights
    (conformance checks the export machinery, whatever weights edgeir ships)."""
    from filelock import FileLock

    from edgeir.bundle import Bundle
    from edgeir.testing.conformance import Exports

    class SharedExports(Exports):
        """Exports shared by the pytest-xdist workers of one run: the first worker to need a bundle exports it
        (under a file lock), the others open it."""

        def bundle(self, target):
            if target not in self._bundles:
                with FileLock(str(self.root / f".{target}.lock")):
                    done = self.root / f".{target}.done"
                    if done.exists():
                        self._bundles[target] = Bundle.open(self.root / done.read_text())
                    else:
                        done.write_text(super().bundle(target).path.name)
            return super().bundle(target)

    # the run's base temporary directory is shared by its workers (each worker's basetemp lies below it)
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared-bundles"
    cache = {}

    def get(method):
        if method not in cache:
            cache[method] = SharedExports(method, root / method)
            cache[method].root.mkdir(parents=True, exist_ok=True)
        return cache[method]

    return get


@pytest.fixture(scope="session")
def exported(kit_exports):
    """``exported(method, target)``: the session's shared ``tiny`` bundle (see ``kit_exports``)."""
    return lambda method, target: kit_exports(method).bundle(target)


@functools.cache
def _registered_targets() -> tuple[str, ...]:
    from edgeir.discovery import targets

    return tuple(targets().registry.names())


def pytest_configure(config):
    """One marker per registered target (``target_<name>``), so ``pytest -m target_onnx`` runs one flow of the grid."""
    for name in _registered_targets():
        config.addinivalue_line("markers", f"target_{name.replace('-', '_')}: exports or runs a {name} artifact")


def pytest_itemcollected(item):
    """Mark every test parametrised with a ``target`` by that target's marker (the conformance and quantization
    grids), as ExecuTorch's backend suite marks each flow; and group tests for ``--dist loadgroup`` (marked here,
    at collection, because xdist reads the groups in its own ``pytest_collection_modifyitems``)."""
    params = item.callspec.params if hasattr(item, "callspec") else {}
    target, method = params.get("target"), params.get("method")
    if isinstance(target, str) and target in _registered_targets():
        item.add_marker(f"target_{target.replace('-', '_')}")
        if isinstance(method, str):
            # one worker per (method, target): the bundle is exported once
            item.add_marker(pytest.mark.xdist_group(f"{method}.{target}"))  # no "@": xdist splits on it
            return
    if _uses_own_shared_fixture(item):
        # bundles a test module exports once (a session-scoped fixture of its own) are exported on one worker
        item.add_marker(pytest.mark.xdist_group(item.module.__name__))


def _uses_own_shared_fixture(item) -> bool:
    """Whether the test uses a module- or session-scoped fixture defined in its own module (conftest's shared
    bundles are shared across workers by a file lock instead)."""
    info = getattr(item, "_fixtureinfo", None)
    if not info:
        return False
    own = item.nodeid.split("::")[0]
    return any(d[-1].scope in ("module", "session") and d[-1].baseid == own for d in info.name2fixturedefs.values())
