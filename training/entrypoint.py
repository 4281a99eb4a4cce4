"""The training job's entry point: what a SageMaker training job runs in the project's image.

    python -m training.entrypoint          # the job's ContainerEntrypoint (training.backends.sagemaker)

It follows SageMaker's container contract:

* ``/opt/ml/input/config/hyperparameters.json``: ``kind`` (``detection``), ``detection`` (the
  ``detection:`` settings as JSON), ``feature_window_minutes`` and ``seed``; every value a string;
* ``/opt/ml/input/data/train/``: the training data (``training.backends.payload``);
* ``/opt/ml/model/``: the fitted zoo, which SageMaker packs as ``model.tar.gz`` under the job's output path;
* ``/opt/ml/output/failure``: why the job failed, which SageMaker reports as the job's ``FailureReason``;
  the exit code is then 1.

The folders can be moved with the training toolkit's variables (``SM_INPUT_CONFIG_DIR``, ``SM_CHANNEL_TRAIN``,
``SM_MODEL_DIR``, ``SM_OUTPUT_DIR``), which is how the tests run it outside a container.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

OPT_ML = Path("/opt/ml")
KINDS = ("detection",)


def paths() -> dict[str, Path]:
    env = os.environ.get
    return {
        "config": Path(env("SM_INPUT_CONFIG_DIR", OPT_ML / "input" / "config")),
        "train": Path(env("SM_CHANNEL_TRAIN", OPT_ML / "input" / "data" / "train")),
        "model": Path(env("SM_MODEL_DIR", OPT_ML / "model")),
        "output": Path(env("SM_OUTPUT_DIR", OPT_ML / "output")),
    }


def hyperparameters(config_dir: Path) -> dict[str, str]:
    path = config_dir / "hyperparameters.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; the job was started without hyperparameters")
    return json.loads(path.read_text())


def settings_from(hps: dict[str, str]):
    """The project's settings with the job's hyperparameters applied: what the pipeline fitted with."""
    from configs.settings import DetectionSettings, load_settings

    settings = load_settings()
    if "detection" in hps:
        settings.detection = DetectionSettings(**json.loads(hps["detection"]))
    if "feature_window_minutes" in hps:
        settings.feast.window_minutes = int(hps["feature_window_minutes"])
    if "seed" in hps:
        settings.simulator.seed = int(hps["seed"])
    return settings


def train(where: dict[str, Path], log=print) -> Path:
    """Fit what the hyperparameters ask for on the train channel; returns the model file written."""
    from training.backends.payload import read_training_data, write_model
    from training.detectors.stage import run_zoo

    hps = hyperparameters(where["config"])
    kind = hps.get("kind", "detection")
    if kind not in KINDS:
        raise ValueError(f"hyperparameter kind={kind!r}: expected {' or '.join(KINDS)}")
    settings = settings_from(hps)
    data = read_training_data(where["train"])
    log(f"training data {data.data_version}: {len(data.frame)} rows x {data.frame.shape[1]} columns")
    started = time.perf_counter()

    def on_progress(name: str, done: int, total: int) -> None:
        if name != "done":
            log(f"training {name} ({done + 1}/{total})")

    splits, result = run_zoo(data, settings, on_progress=on_progress)
    path = write_model(splits, result, where["model"])
    log(
        f"fitted {len(result.models)} models in {time.perf_counter() - started:.0f} s; put forward: {result.best}"
    )
    return path


def main() -> int:
    where = paths()
    try:
        train(where)
    except Exception as exc:  # noqa: BLE001 - any error: the contract wants its reason in output/failure, exit 1
        traceback.print_exc()
        where["output"].mkdir(parents=True, exist_ok=True)
        (where["output"] / "failure").write_text(f"{type(exc).__name__}: {exc}"[:1024])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
