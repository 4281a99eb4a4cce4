"""The scoring service's tests share one small fleet's registered models (test_serving.py, test_hardening.py)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def served(cerebro_home):
    """A z-score detector and a seasonal-naive forecaster trained on two simulated days and registered once."""
    import mlflow
    from support.demo_models import register_demo_models

    from configs.settings import load_settings

    settings = load_settings()
    out = register_demo_models(settings, days=2, seed=7)
    model = mlflow.pyfunc.load_model(f"models:/cerebro-detector-zscore/{out['versions']['cerebro-detector-zscore']}")
    out["bundle"] = model.unwrap_python_model().bundle
    out["example"] = model.input_example
    return out


@pytest.fixture
def body(served):
    """/v1/score's body: the last 90 minutes of cart's metrics, columnar."""
    from support.demo_models import window_body

    return window_body(served["telemetry"], "cart", minutes=90)
