import os

import pytest

os.environ.setdefault("EDGEIR_PROGRESS", "0")


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
            cache[method, target] = edgeir.export(method, target, variant="tiny", output=root)
        return cache[method, target]

    return get
