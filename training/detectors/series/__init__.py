"""Detectors for one real series with no labels (what ``cerebro detect`` runs by default).

models.py: :class:`SeasonalResidual`, a robust residual detector (seasonal profile, trailing level,
MAD spread, tail-probability scores); choose.py: :class:`AutoSeries`, the label-free choice among its
settings per series; inject.py: the synthetic anomalies that choice (and the benchmark) plants.
Numpy and pandas only, so the command starts fast.
"""
from training.detectors.series.base import NotEnoughRows, infer_step, to_score
from training.detectors.series.choose import AutoSeries, average_precision, candidates
from training.detectors.series.inject import inject
from training.detectors.series.models import SeasonalResidual

__all__ = ["AutoSeries", "NotEnoughRows", "SeasonalResidual", "average_precision", "candidates", "infer_step",
           "inject", "to_score"]
