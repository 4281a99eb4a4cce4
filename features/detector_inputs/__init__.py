"""What a detector reads: the feature store's columns after the zoo's transforms, computed two ways that must agree.

    columns.py      which columns a detector can read and what each one is (the one definition both paths follow)
    pandas_path.py  the zoo's transforms on feature rows (training's ``time_split``, the MLflow adapter's
                    ``detector_frame``, the scoring service's full path), after ``features.transforms.compute_features``
    numpy_path.py   the same columns straight from one scoring window's samples, in numpy (the scoring service's
                    fast path: a 60-minute window in a few milliseconds instead of ~25 ms)

The rolling statistics themselves are defined once, both ways side by side, in ``features.transforms.ROLLING``.
``tests/features/test_detector_inputs.py`` holds the two paths equal on every column.
"""
