"""A member whose calibration fails out of sample (its training tail promises one row in 10^8, the validation
period's normal rows reach it far more often) is trained, scored and reported, but not an ensemble member: in
a mean of capped surprisals it would outvote the rest at its cap on an ordinary excursion."""
from __future__ import annotations

import numpy as np
import pytest
from support.raw_fleet import raw_fleet

from training.detectors.statistical import ZScoreDetector
from training.zoo import MISCALIBRATED_SHARE, build_zoo, miscalibrated, normal_rows, time_split, train_zoo


class _DriftsAfterTraining(ZScoreDetector):
    """A z-score whose every row after its training period scores far past anything it was calibrated on."""

    view = "drift"

    def _fit(self, frame):
        super()._fit(frame)
        self.until_ = frame.index.get_level_values(-1).max()

    def _score(self, frame):
        return super()._score(frame) + 1e3 * np.asarray(frame.index.get_level_values(-1) > self.until_)


@pytest.fixture(scope="module")
def splits():
    sim, wide = raw_fleet(days=3, seed=6)
    return time_split(wide, sim.incidents)


def test_a_member_miscalibrated_on_the_validation_periods_normal_rows_is_left_out_of_the_ensemble(splits):
    zoo = build_zoo(list(splits.frame.columns), [], include=["zscore", "mad", "pca"])
    zoo["drifting"] = _DriftsAfterTraining(features=list(splits.frame.columns))
    result = train_zoo(splits, zoo, ensemble_size=4)
    assert "drifting" in result.models and "drifting" in result.reports  # still trained and reported
    assert set(result.miscalibrated) == {"drifting"} and result.miscalibrated["drifting"] > 0.9
    assert "drifting" not in result.ensemble_members
    assert set(result.ensemble_members) <= {"zscore", "mad", "pca"} and result.ensemble_members


def test_the_normal_rows_leave_out_each_incident_with_its_lead_and_recovery(splits):
    plain = normal_rows(splits)
    wide = normal_rows(splits, recovery_minutes=60)
    assert not (plain & ~splits.masks["validation"]).any()
    assert wide.sum() < plain.sum() and not (wide & ~plain).any()
    assert miscalibrated({}, {}, np.zeros(len(splits.frame), dtype=bool)) == {}
    assert MISCALIBRATED_SHARE < 0.01
