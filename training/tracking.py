"""MLflow: experiments, runs, and registering every model through the one pyfunc adapter.

Tracking lives in SQLite under the home folder by default (an absolute ``sqlite:///`` URI) with artifacts in
``<home>/mlartifacts``; the scale profile points both at PostgreSQL and S3 instead.
"""
from __future__ import annotations

import json
import tempfile
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")
_REQUIREMENTS = (
    "pandas", "numpy", "scikit-learn", "scipy", "statsmodels", "joblib", "torch", "krcf", "mlflow",
    "prophet", "pmdarima", "gluonts", "lightning", "xgboost", "imbalanced-learn", "shap",
)


def requirements() -> list[str]:
    out = []
    for name in _REQUIREMENTS:
        try:
            out.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:  # pragma: no cover
            continue
    return out


def use_experiment(settings) -> str:
    """Point MLflow at the configured store and experiment (created with the configured artifact root)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    name = settings.mlflow.experiment
    if mlflow.get_experiment_by_name(name) is None:
        try:
            mlflow.create_experiment(name, artifact_location=settings.mlflow_artifact_root)
        except MlflowException:
            # Stages that train side by side (forecasting beside detection) may both find it missing; the
            # loser of that race uses the winner's experiment.
            if mlflow.get_experiment_by_name(name) is None:
                raise
    mlflow.set_experiment(name)
    return name


def start_stage_run(settings, name: str, started: float | None = None):
    """``mlflow.start_run(run_name=name)`` in the configured experiment, dated from ``started`` (epoch seconds:
    when the stage began its work) so that the run's duration is the stage's, not only its registration's."""
    import mlflow
    from mlflow import MlflowClient

    use_experiment(settings)
    if started is None:
        return mlflow.start_run(run_name=name)
    experiment = mlflow.get_experiment_by_name(settings.mlflow.experiment).experiment_id
    run = MlflowClient().create_run(experiment, start_time=int(started * 1000), run_name=name)
    return mlflow.start_run(run_id=run.info.run_id)


def log_dataset(frame: pd.DataFrame, name: str, source: str, digest: str | None = None, context: str = "training",
                sample: int = 2000) -> None:
    """Record the stage's data in the active run (MLflow's Dataset column): ``frame``'s schema and row count from
    a sample of it (a pandas dataset of every row would be copied whole), the lake window as the source and the
    data version as the digest."""
    import mlflow

    head = frame.head(sample).reset_index()
    for col in head.columns:  # MLflow's schema inference takes plain types
        if isinstance(head[col].dtype, pd.CategoricalDtype):
            head[col] = head[col].astype(str)
        elif pd.api.types.is_integer_dtype(head[col].dtype):  # a count may be missing later: say float, as MLflow asks
            head[col] = head[col].astype("float64")
    with warnings.catch_warnings():  # MLflow registers its local-path source twice and says so on every call
        warnings.filterwarnings("ignore", message=".*dataset source can be interpreted in multiple ways.*")
        dataset = mlflow.data.from_pandas(head, source=source, name=name, digest=(digest or "")[:36] or None)
    mlflow.log_input(dataset, context=context, tags={"rows": str(len(frame))})


def log_bundle(bundle: dict, registered_name: str, input_example: pd.DataFrame, params: dict, metrics: dict,
               tags: dict, description: str | None = None, model_description: str | None = None) -> str:
    """Log ``bundle`` as a pyfunc model in the active run and register it; returns the new version.
    ``description`` goes on the new version, ``model_description`` on the registered model (what the registry
    UI shows first)."""
    import joblib
    import mlflow
    from mlflow.models import infer_signature

    from training.kinds import predict_bundle

    output = predict_bundle(bundle, input_example, {})
    with warnings.catch_warnings():
        # The integer columns are 0/1 flags computed by the model, never missing: MLflow's hint about integer
        # columns that may hold NaN does not apply, and printed once per model it buried make run's output.
        warnings.filterwarnings("ignore", message=".*Inferred schema contains integer column.*")
        signature = infer_signature(input_example, output)
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
        warnings.filterwarnings("ignore", message=".*Inferred schema contains integer column.*")
        path = Path(tmp) / "bundle.joblib"
        joblib.dump(bundle, path)
        mlflow.log_params({k: (json.dumps(v) if isinstance(v, (list, dict)) else v)
                           for k, v in params.items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None})
        mlflow.set_tags(tags)
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(PYFUNC_FILE), artifacts={"bundle": str(path)},
            code_paths=[str(Path(__file__).parent)], signature=signature, input_example=input_example,
            registered_model_name=registered_name, pip_requirements=requirements(),
        )
    version = str(info.registered_model_version)
    if description or model_description:
        describe(registered_name, version, description, model_description)
    return version


def describe(name: str, version: str, description: str | None, model_description: str | None) -> None:
    from mlflow import MlflowClient

    client = MlflowClient()
    if description:
        client.update_model_version(name, version, description=description[:5000])
    if model_description:
        client.update_registered_model(name, description=model_description[:5000])
