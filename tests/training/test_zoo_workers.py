"""train_zoo fits members side by side in threads (`detection.train_workers`): the members' scores, the
skipped ones and the order are what one worker gives; torch members take turns."""
from __future__ import annotations

import numpy as np
import pytest
from support.raw_fleet import raw_fleet

from training.detectors.base import NotEnoughData
from training.zoo import build_zoo, time_split, train_zoo


class _TooShort:
    """A member that refuses this much history, as a seasonal member does on a short export."""

    threshold_ = 1.0

    def fit(self, X, y=None):
        raise NotEnoughData("needs 3 days of history, got 2")


@pytest.fixture(scope="module")
def splits():
    sim, wide = raw_fleet(days=2, seed=6)
    return time_split(wide, sim.incidents)


def _zoo(columns):
    zoo = build_zoo(columns, [], include=["zscore", "pca", "vae", "transformer_autoencoder"])
    zoo["too_short"] = _TooShort()
    return zoo


def test_members_fitted_side_by_side_score_as_one_worker_does(splits):
    columns = list(splits.frame.columns)
    seen: list[str] = []
    one = train_zoo(splits, _zoo(columns), ensemble_size=2)
    two = train_zoo(splits, _zoo(columns), ensemble_size=2, workers=2,
                    on_progress=lambda name, k, total: seen.append(name))
    members = ["zscore", "pca", "vae", "transformer_autoencoder"]
    assert list(two.models) == list(one.models) == [*members, "ensemble"]
    for name in one.models:
        np.testing.assert_allclose(two.scores[name], one.scores[name], rtol=0, atol=1e-9, err_msg=name)
    assert "too_short" in two.skipped and "3 days" in two.skipped["too_short"]
    assert seen[:5] == [*members, "too_short"]  # progress in the zoo's order, from the calling thread
    assert two.ensemble_members == one.ensemble_members
