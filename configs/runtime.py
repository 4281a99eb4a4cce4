"""Point every engine at the home folder before it is imported.

Prefect, MLflow, Great Expectations and Hugging Face read their settings from the environment when they
are first imported, so the CLI and the flows call :func:`configure_environment` first.
"""
from __future__ import annotations

import os
from pathlib import Path

from configs.settings import Settings, reveal


def engine_environment(settings: Settings) -> dict[str, str]:
    """The environment variables that tie Prefect, MLflow and friends to this configuration."""
    env = {
        "CEREBRO_HOME": str(settings.home),
        "CEREBRO_CONFIG": settings.profile,
        "PREFECT_HOME": str(settings.prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(settings.prefect_home / "storage"),
        "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "INFO"),
        "GX_ANALYTICS_ENABLED": "false",
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        # A progress bar per artifact downloaded while registering a model is noise in the pipeline's output.
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        # Threads that sleep while they wait: spinning OpenMP threads cost torch 3-10x on a busy 2-core machine.
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
    }
    if settings.prefect.api_url:
        env["PREFECT_API_URL"] = settings.prefect.api_url
    if reveal(settings.prefect.database_url):
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = reveal(settings.prefect.database_url)
    return env


# `cerebro ui` leaves a prefect.toml with this first line in the checkout, so that `prefect deployment run ...`
# typed there finds its server (Prefect reads prefect.toml from the working directory); `cerebro ui --stop`
# removes it. The project's own processes keep their configured API (flows/services.py).
UI_PREFECT_TOML_MARK = "# written by `cerebro ui` for the prefect command in this folder; `cerebro ui --stop` removes it"


def ui_prefect_toml(folder: Path | None = None) -> Path | None:
    """The prefect.toml `cerebro ui` wrote in ``folder`` (default: the working directory), or None."""
    path = (folder or Path.cwd()) / "prefect.toml"
    try:
        return path if path.read_text().startswith(UI_PREFECT_TOML_MARK) else None
    except OSError:
        return None


def configure_environment(settings: Settings, override: bool = True) -> dict[str, str]:
    """Export :func:`engine_environment` into this process; create the home folder."""
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.prefect_home.mkdir(parents=True, exist_ok=True)
    env = engine_environment(settings)
    for key, value in env.items():
        if override or key not in os.environ:
            os.environ[key] = value
    if not settings.prefect.api_url and "PREFECT_API_URL" not in os.environ and ui_prefect_toml():
        # An empty value outranks prefect.toml: the flows keep Prefect's temporary server, as without the file.
        os.environ["PREFECT_API_URL"] = ""
    return env
