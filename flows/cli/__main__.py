"""``python -m flows.cli``: the ``cerebro`` command without its console script."""
from flows.cli import app

app()
