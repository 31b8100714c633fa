"""The GMM tests make many tiny tensor calls: one intra-op thread avoids the spin-wait slowdown
of two threads on a shared 2-core machine (20× on a loaded sandbox), and is restored after."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
