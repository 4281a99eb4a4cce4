"""Small helpers the loaders share: timestamps, walking a folder, service lists."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from pathlib import Path

from rag.documents import LoadError, LoadReport


def iso_utc(value, where: str) -> str | None:
    """A timestamp (ISO string, datetime, date, epoch seconds) as ISO 8601 UTC; ``None`` stays ``None``.

    ``where`` names the file, record and field for the error message."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    if type(value).__name__ == "NaTType":  # pandas' missing time (an incident without a failure time)
        return None
    try:
        if isinstance(value, datetime):
            stamp = value
        elif isinstance(value, date):
            stamp = datetime(value.year, value.month, value.day)
        elif isinstance(value, (int, float)) or (isinstance(value, str) and value.replace(".", "", 1).isdigit()):
            stamp = datetime.fromtimestamp(float(value), UTC)
        else:
            stamp = datetime.fromisoformat(str(value).strip())
    except (TypeError, ValueError, OverflowError, OSError):
        raise LoadError(f"{where}: expected an ISO 8601 timestamp (e.g. 2026-11-20T14:05:00Z), "
                        f"got {value!r}") from None
    if hasattr(stamp, "to_pydatetime"):  # pandas Timestamp
        stamp = stamp.to_pydatetime()
    stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
    return stamp.isoformat().replace("+00:00", "Z")


def mtime_utc(path: Path) -> str:
    return iso_utc(path.stat().st_mtime, str(path))


def as_list(value, where: str) -> list[str]:
    """A list of names given as a list, or as a comma/semicolon separated string."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.replace(";", ",").split(",") if v.strip()]
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise LoadError(f"{where}: expected a list of names or a comma-separated string, got {value!r}")


def walk(root: Path, suffixes: Iterable[str]) -> list[Path]:
    """Files under ``root`` (or ``root`` itself) with one of ``suffixes``, hidden folders skipped, sorted."""
    suffixes = tuple(s.lower() for s in suffixes)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise LoadError(f"{root}: no such file or folder")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def load_files(root: Path, suffixes: Iterable[str], load_one: Callable[[Path, Path], LoadReport]) -> LoadReport:
    """Run ``load_one(path, root)`` over a folder. A bad file is reported in ``skipped`` with its reason;
    when ``root`` is a single file the error is raised, since there is nothing else to index."""
    report = LoadReport()
    for path in walk(root, suffixes):
        try:
            report.extend(load_one(path, root))
        except LoadError as exc:
            if root.is_file():
                raise
            report.skipped.append((str(path), str(exc)))
        except (UnicodeDecodeError, OSError) as exc:
            if root.is_file():
                raise LoadError(f"{path}: cannot read: {exc}") from exc
            report.skipped.append((str(path), f"cannot read: {exc}"))
    return report


def relpath(path: Path, root: Path) -> str:
    base = root.parent if root.is_file() else root
    return path.resolve().relative_to(base.resolve()).as_posix()
