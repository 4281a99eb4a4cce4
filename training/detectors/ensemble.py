"""A voting ensemble over calibrated scores.

Each member's raw score is first mapped onto the shared scale its own tail calibrator learned on the
training data (``-log10`` of the probability of a training score at least this high: 2 = one row in a
hundred, 4 = one in ten thousand). The ensemble's score is the mean of the members' calibrated scores, so
every member has an equal vote whatever the units of its raw score; its threshold is learned like any
other detector's, from its own training scores.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
from sklearn.base import clone

from training.detectors.base import Detector


def surprisal(detector: Detector, scores: np.ndarray) -> np.ndarray:
    """-log10 of the tail probability of each score under the detector's training distribution."""
    return -np.log10(detector.calibrator_.tail_probability(scores))


class VotingEnsemble(Detector):
    """``members``: a list of (name, detector). With ``prefit=True`` fitted members are used as they are
    (the zoo trains them once); otherwise they are cloned and fitted on the ensemble's training data."""

    family: ClassVar[str] = "ensemble"

    # A fifth of the members' false-alarm rate per row. Where several members are moderately surprised
    # together on a normal row, their mean alarms more often than any of them does at its own threshold. On
    # the development fleets (seeds 42, 58, 314, 1001, 2718, 11, 2024, 8080, 5, 999, each ending at midnight
    # and at noon) 2e-4 met the targets on 20 of 20 with every incident found, where 5e-4 met them on 17
    # (worst precision 0.886) and stricter rates lost an incident; about a minute more time to detect.
    # Choosing the rate per fleet on the validation incidents instead did worse (19 of 20: it overfits a
    # handful of incidents). Checked afterwards, unchanged, on fleets used for nothing else (README).
    def __init__(self, members=(), prefit=False, cap=12.0, alpha=2e-4):
        self.members = members
        self.prefit = prefit
        self.cap = cap
        self.alpha = alpha

    def _select(self, frame, fitting=False):
        # Members pick their own columns; the ensemble passes the whole frame through.
        if fitting:
            self.feature_names_in_ = np.array(list(frame.columns), dtype=object)
            self.n_features_in_ = frame.shape[1]
        return frame

    def _fit(self, frame):
        if not self.members:
            raise ValueError("VotingEnsemble needs at least one member")
        self.members_ = [(name, det if self.prefit else clone(det).fit(frame)) for name, det in self.members]

    def member_scores(self, frame) -> dict[str, np.ndarray]:
        return {name: det.score(frame) for name, det in self.members_}

    def combine(self, member_scores: dict[str, np.ndarray]) -> np.ndarray:
        """The ensemble score from members' raw scores (lets a caller that has them avoid rescoring)."""
        votes = [np.minimum(surprisal(det, member_scores[name]), self.cap) for name, det in self.members_]
        return np.mean(votes, axis=0)

    def _score(self, frame):
        return self.combine(self.member_scores(frame))

    @property
    def value_columns_(self) -> list[str]:
        """The columns the members read, in the order ``score_values`` takes them."""
        return list(dict.fromkeys(str(c) for _, det in self.members_ for c in det.feature_names_in_))

    @property
    def score_values(self):
        """``score`` without pandas, for the scoring service, when every member scores arrays itself (the
        statistical ones): an ensemble of them then costs the service what its members do, not a frame's set-up.
        Absent (``hasattr`` is False) otherwise."""
        if not all(hasattr(det, "score_values") for _, det in getattr(self, "members_", [])) or \
                not getattr(self, "members_", None):
            raise AttributeError("score_values: not every member scores arrays")
        return self._score_values

    @property
    def reads_times(self) -> bool:
        """Whether a member's ``score_values`` needs the rows' times (``stamps``)."""
        return any(getattr(det, "reads_times", False) for _, det in getattr(self, "members_", []))

    def _score_values(self, values: np.ndarray, keys: np.ndarray, stamps: np.ndarray | None = None) -> np.ndarray:
        """``values``: the ``value_columns_`` with gaps filled, rows grouped by ``keys`` (the series);
        ``stamps``: the rows' times, for the members that read them (``reads_times``)."""
        at = {c: i for i, c in enumerate(self.value_columns_)}

        def member(det):
            cols = values[:, [at[str(c)] for c in det.feature_names_in_]]
            if getattr(det, "reads_times", False):
                return det.score_values(cols, keys, stamps=stamps)
            return det.score_values(cols, keys)

        return self.combine({name: member(det) for name, det in self.members_})

    def fit_from_member_scores(self, train_member_scores: dict[str, np.ndarray], columns: list[str]):
        """Fit from the prefit members' training scores (already computed by the caller)."""
        from training.detectors.base import TailCalibrator

        if not self.prefit:
            raise ValueError("fit_from_member_scores needs prefit members")
        self.feature_names_in_ = np.array(columns, dtype=object)
        self.n_features_in_ = len(columns)
        self.members_ = list(self.members)
        train = self.combine(train_member_scores)
        self.calibrator_ = TailCalibrator().fit(train)
        self.threshold_ = self.threshold_at(self.alpha)
        return self

    def threshold_at(self, alpha: float) -> float:
        """The calibrated threshold, kept below the cap: the combined score never exceeds it, and where many
        training rows sit at the cap (a member whose own tail put some of its training rows past it) the
        extrapolated tail lies beyond it, a threshold no row could cross. Below the cap, the rows every member
        puts at its cap are still flagged."""
        return min(self.calibrator_.threshold(alpha), float(np.nextafter(self.cap, 0.0)))
