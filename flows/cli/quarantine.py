"""`cerebro quarantine`: the rows validation refused, and why. Nothing refused is ever dropped; this shows where
it went.

    cerebro quarantine                    # the newest quarantine files: when, source, rows, rules broken
    cerebro quarantine FILE               # that file's rows: source row, rule, reason and the raw values
"""
from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from flows.cli.common import ConfigOpt, JsonOpt, fail, out, print_json, settings_or_exit


def quarantine(
    file: Path | None = typer.Argument(None, help="A quarantine file (printed by `cerebro ingest`); default: "
                                       "list the newest files."),
    limit: int = typer.Option(20, min=1, help="Files listed, or rows shown of FILE."),
    config: str | None = ConfigOpt,
    as_json: bool = JsonOpt,
):
    """Show what validation refused: the quarantine files of the home folder, or the rows of one of them.

    Examples:

        cerebro quarantine

        cerebro quarantine .cerebro/quarantine/2026-12-03/metrics-csv-80b46e2c-033454.parquet --limit 50
    """
    import pandas as pd

    if file is not None:
        if not file.is_file():
            fail(f"{file}: no such quarantine file; `cerebro quarantine` lists them", 2)
        try:
            rows = pd.read_parquet(file)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's argument, not a bug
            fail(f"{file}: not a quarantine file (expected Parquet written by `cerebro ingest`): {exc}", 2)
        shown = rows.head(limit).drop(columns=["quarantined_at"], errors="ignore").astype(object)
        shown = shown.where(shown.notna(), "")
        if as_json:
            print_json({"file": str(file), "rows": len(rows), "shown": shown.to_dict(orient="records")})
            return
        table = Table(title=f"{file.name}: {len(rows):,} rows refused" + (f", first {limit}" if len(rows) > limit else ""))
        cols = [c for c in ("source_row", "rules", "timestamp", "service", "metric", "value", "reason")
                if c in shown.columns]
        for col in cols:
            table.add_column(col, overflow="fold")
        for r in shown[cols].itertuples(index=False):
            table.add_row(*(str(v) for v in r))
        out.print(table)
        return
    settings = settings_or_exit(config)
    files = sorted(Path(settings.quarantine_dir).rglob("*.parquet"), key=lambda p: p.stat().st_mtime, reverse=True)
    listed = []
    for path in files[:limit]:
        frame = pd.read_parquet(path, columns=None)
        rules = frame["rules"].astype(str).str.split(",").explode().str.strip() if "rules" in frame else pd.Series([])
        listed.append({"file": str(path), "source": str(frame["source"].iloc[0]) if len(frame) else "",
                       "rows": len(frame), "rules": rules.value_counts().to_dict()})
    if as_json:
        print_json({"quarantine_dir": str(settings.quarantine_dir), "files": len(files), "listed": listed})
        return
    if not listed:
        out.print(f"The quarantine at {settings.quarantine_dir} is empty: nothing has been refused.")
        return
    table = Table(title=f"Quarantine ({len(files)} files, newest first): {settings.quarantine_dir}")
    for col in ("file", "source", "rows", "rules broken"):
        table.add_column(col, overflow="fold")
    for item in listed:
        table.add_row(str(Path(item["file"]).relative_to(settings.quarantine_dir)), item["source"], f"{item['rows']:,}",
                      ", ".join(f"{k}: {v:,}" for k, v in item["rules"].items()))
    out.print(table)
    out.print("See a file's rows with `cerebro quarantine FILE`.")
