"""Operator tests multiply many tiny matrices: one intra-op thread avoids the thread-pool hand-off
that dominates such calls on a busy machine (tens of ms instead of a fraction of one)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
