"""Kept for models registered before the kind table (``training/kinds.py``): their logged ``pyfunc_model.py``
imports ``predict_bundle`` from here. New code imports ``training.kinds.predict_bundle``."""
from __future__ import annotations

import pandas as pd


def predict_bundle(bundle: dict, frame: pd.DataFrame, params: dict) -> pd.DataFrame:
    from training.kinds import predict_bundle as by_kind

    return by_kind(bundle, frame, params)
