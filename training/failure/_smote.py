"""SMOTE that remembers what it saw: its own module, so a pickled model can find the class (and importing
``training.failure.model`` stays cheap: imbalanced-learn loads only when a model is fitted or unpickled)."""
from __future__ import annotations

from collections import Counter

import numpy as np
from imblearn.over_sampling import SMOTE


class RecordingSMOTE(SMOTE):
    """SMOTE that records the class counts it received and returned, and how often it ran (tests check that
    it ran once, on the training rows, and never at predict time)."""

    def fit_resample(self, X, y, **params):
        self.counts_in_ = dict(Counter(np.asarray(y).tolist()))
        Xr, yr = super().fit_resample(X, y, **params)
        self.counts_out_ = dict(Counter(np.asarray(yr).tolist()))
        self.calls_ = getattr(self, "calls_", 0) + 1
        return Xr, yr
