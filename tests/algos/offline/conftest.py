"""The offline tests' tiny dataset: 4 episodes of 50 steps of Pendulum-v1 under uniform random actions (200 rows)."""

from __future__ import annotations

import pytest

from tests.offline_data import random_pendulum


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """The dataset as `OfflineData`; its id is `dataset.dataset_id`. One per test module (a fresh folder each)."""
    yield from random_pendulum(tmp_path_factory, "test/Pendulum-v1/random-v0", 4, 50)
