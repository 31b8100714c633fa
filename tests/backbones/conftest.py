import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    # On a shared 2-core box, OpenMP threads waiting on each other make tiny convs ~100x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
