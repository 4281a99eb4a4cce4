"""Code the tests and the benchmarks share, kept out of the shipped packages. Imported as ``support``: pytest
puts ``tests/`` on the path (for its conftest.py) and the benchmarks put it there themselves. ``tests`` cannot
be the package: smdebug_rulesconfig, which SageMaker's SDK installs, ships a ``tests`` package of its own."""
