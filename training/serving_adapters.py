"""A detector request frame as the detector reads it; ``predict_bundle`` for models registered before the kind
table (``training/kinds.py``), whose logged adapter file imports it from here."""
from __future__ import annotations

import pandas as pd

from features.detector_inputs.pandas_path import detector_frame


def predict_bundle(bundle: dict, frame: pd.DataFrame, params: dict) -> pd.DataFrame:
    """Kept for models registered before the kind table: their logged ``pyfunc_model.py`` imports this name."""
    from training.kinds import predict_bundle as by_kind

    return by_kind(bundle, frame, params)
