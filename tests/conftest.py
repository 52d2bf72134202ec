import os

import pytest

os.environ.setdefault("EDGEIR_PROGRESS", "0")


@pytest.fixture(scope="session")
def torch_threads():
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    return torch.get_num_threads()
