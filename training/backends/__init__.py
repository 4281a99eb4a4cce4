"""Where the detector zoo is fitted (``training.backend``): in this process, or as a SageMaker training job.

    splits, result, info = fit_detectors(settings, data, on_progress=..., on_log=...)

Both return what ``training.detectors.stage.run_zoo`` returns, so registration is the same whichever ran the
fit; ``info`` says where it ran (``{"backend": "sagemaker", "job": ..., ...}``) for the run's tags.
"""

from __future__ import annotations

from collections.abc import Callable


class TrainingError(RuntimeError):
    """A training backend could not fit the models; the message names the job and the reason."""


def fit_detectors(
    settings,
    data,
    on_progress: Callable[[str, int, int], None] | None = None,
    on_log: Callable[[str], None] | None = None,
):
    """(splits, result, info) for ``data`` (``TrainingData``), fitted where ``training.backend`` says."""
    if settings.training.backend == "sagemaker":
        from training.backends.sagemaker import fit_detectors_on_sagemaker

        return fit_detectors_on_sagemaker(settings, data, on_progress=on_progress, on_log=on_log)
    from training.detectors.stage import run_zoo

    splits, result = run_zoo(data, settings, on_progress=on_progress)
    return splits, result, {"backend": "local"}
