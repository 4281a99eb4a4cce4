"""Request traces from OpenTelemetry's OTLP/JSON export files, mapped onto the span schema.

A file holds one ``TracesData`` document, ``{"resourceSpans": [...]}``, or JSON lines of them (what the
collector's file exporter writes, one document a line); a folder is read file by file (``*.json``,
``*.jsonl``, ``*.ndjson``). Per span:

    resource.attributes[service.name]   -> service
    traceId, spanId, parentSpanId       -> trace_id, span_id, parent_span_id (hex, lower case; "" = root)
    name                                -> operation
    startTimeUnixNano, endTimeUnixNano  -> start (UTC), duration_ms
    status.code (2 = ERROR)             -> status error, else ok

OTLP/JSON writes ids as hex; the base64 that a plain protobuf JSON mapping produces is accepted too. Older
exports name ``scopeSpans`` ``instrumentationLibrarySpans``. A span that cannot be used is quarantined with
its reason (and the raw span); a file of which nothing is usable raises :class:`TraceFileError`.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from telemetry.schema import SERVICE_NAME, empty_spans, spans_frame

SUFFIXES = (".json", ".jsonl", ".ndjson")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_ERROR_CODES = {2, "2", "STATUS_CODE_ERROR"}


class TraceFileError(ValueError):
    """A traces file that holds no usable OTLP span; the message names the file."""


@dataclass
class OtlpResult:
    clean: pd.DataFrame  # telemetry.schema.SPAN_COLUMNS
    quarantine: pd.DataFrame  # source, source_row, reason, raw
    files: list[str] = field(default_factory=list)
    rows_in: int = 0

    def reasons(self) -> dict[str, int]:
        if self.quarantine.empty:
            return {}
        kinds = self.quarantine["reason"].str.split(":").str[0]
        return {str(k): int(v) for k, v in kinds.value_counts().items()}


def _hex_id(value, size: int) -> str:
    """A ``size``-byte id as lower-case hex; raises ValueError naming what is wrong."""
    if not isinstance(value, str) or not value:
        raise ValueError("missing")
    if len(value) == 2 * size and _HEX.match(value):
        out = value.lower()
    else:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{value!r} is neither {2 * size} hex digits nor base64") from None
        if len(raw) != size:
            raise ValueError(f"{value!r} is not {size} bytes")
        out = raw.hex()
    if set(out) == {"0"}:
        raise ValueError("all zeros (an invalid id)")
    return out


def _nanos(value) -> int:
    if isinstance(value, bool) or value is None or value == "":
        raise ValueError("missing")
    try:
        out = int(value)  # OTLP/JSON writes 64-bit integers as decimal strings
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not an integer number of nanoseconds") from None
    if out <= 0:
        raise ValueError(f"{value!r} is not after 1970")
    return out


def _service(resource: dict) -> str | None:
    for attr in (resource or {}).get("attributes") or []:
        if isinstance(attr, dict) and attr.get("key") == "service.name":
            value = (attr.get("value") or {}).get("stringValue")
            return value if isinstance(value, str) else None
    return None


def _documents(path: Path) -> list[tuple[str, object]]:
    """(where, parsed document) for one file: the whole file as one JSON value, else one per line."""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        return [("document", json.loads(text))]
    except json.JSONDecodeError:
        pass
    docs: list[tuple[str, object]] = []
    for no, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                docs.append((f"line {no}", json.loads(line)))
            except json.JSONDecodeError as exc:
                docs.append((f"line {no}", exc))
    return docs


def _read_file(path: Path, dataset: str, rows: list[dict], bad: list[dict]) -> int:
    """Append the spans of one file to ``rows`` and its unusable spans to ``bad``; returns spans seen.
    Raises TraceFileError when the file holds no OTLP traces document at all."""
    docs = _documents(path)
    found = 0
    seen = 0
    for where, doc in docs:
        if isinstance(doc, Exception):
            bad.append({"source": str(path), "source_row": where, "reason": f"not JSON: {doc}", "raw": ""})
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("resourceSpans"), list):
            bad.append({"source": str(path), "source_row": where, "reason": "not an OTLP traces document: no "
                        "resourceSpans list", "raw": json.dumps(doc)[:2000]})
            continue
        found += 1
        for r, rs in enumerate(doc["resourceSpans"]):
            rs = rs if isinstance(rs, dict) else {}
            service = _service(rs.get("resource"))
            scopes = rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []
            for s, scope in enumerate(scopes):
                for k, span in enumerate((scope or {}).get("spans") or []):
                    seen += 1
                    at = f"{where} resourceSpans[{r}] scopeSpans[{s}] spans[{k}]"
                    try:
                        rows.append(_span(span, service, dataset))
                    except ValueError as exc:
                        bad.append({"source": str(path), "source_row": at, "reason": str(exc),
                                    "raw": json.dumps(span)[:2000]})
    if not found:
        raise TraceFileError(f"{path}: not OpenTelemetry traces: no OTLP/JSON document with resourceSpans in it "
                             "(expected one TracesData JSON document, or JSON lines of them as the collector's file "
                             "exporter writes)")
    return seen


def _span(span, service: str | None, dataset: str) -> dict:
    if not isinstance(span, dict):
        raise ValueError("bad span: not a JSON object")  # noqa: TRY004 - a reason for the quarantine, like the rest
    if not service:
        raise ValueError("no service: the resource has no service.name attribute")
    if not SERVICE_NAME.match(service):
        raise ValueError(f"bad service: {service!r} is not a usable service name")
    ids = {}
    for key, size in (("traceId", 16), ("spanId", 8)):
        try:
            ids[key] = _hex_id(span.get(key), size)
        except ValueError as exc:
            raise ValueError(f"bad {key}: {exc}") from None
    parent = span.get("parentSpanId") or None
    if parent is not None:
        try:
            parent = _hex_id(parent, 8)
        except ValueError as exc:
            raise ValueError(f"bad parentSpanId: {exc}") from None
    times = {}
    for key in ("startTimeUnixNano", "endTimeUnixNano"):
        try:
            times[key] = _nanos(span.get(key))
        except ValueError as exc:
            raise ValueError(f"bad {key}: {exc}") from None
    if times["endTimeUnixNano"] < times["startTimeUnixNano"]:
        raise ValueError("bad times: the span ends before it starts")
    code = (span.get("status") or {}).get("code", 0)
    return {
        "trace_id": ids["traceId"], "span_id": ids["spanId"], "parent_span_id": parent, "service": service,
        "operation": str(span.get("name") or ""), "start": times["startTimeUnixNano"],
        "duration_ms": (times["endTimeUnixNano"] - times["startTimeUnixNano"]) / 1e6,
        "status": "error" if code in _ERROR_CODES else "ok", "dataset": dataset,
    }


def trace_files(path: str | Path) -> list[Path]:
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not files:
            raise TraceFileError(f"{path}: no {', '.join(SUFFIXES)} files in this folder")
        return files
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    return [path]


def load_otlp(path: str | Path, dataset: str | None = None) -> OtlpResult:
    """Read an OTLP/JSON traces file or folder into spans of ``dataset`` (default otlp-<file or folder name>).

    A span seen twice (the same trace and span id) keeps its last version; the earlier is quarantined.
    Raises FileNotFoundError, or TraceFileError naming the file that is not traces at all; a folder's
    unusable file stops the import too, so nothing half-read is stored."""
    files = trace_files(path)
    dataset = dataset or f"otlp-{Path(path).expanduser().stem}"
    rows: list[dict] = []
    bad: list[dict] = []
    seen = sum(_read_file(f, dataset, rows, bad) for f in files)
    clean = pd.DataFrame(rows)
    if not clean.empty:
        clean["start"] = pd.to_datetime(clean["start"], unit="ns", utc=True)
        dup = clean.duplicated(["trace_id", "span_id"], keep="last")
        for row in clean[dup].itertuples():
            bad.append({"source": str(path), "source_row": f"trace {row.trace_id} span {row.span_id}",
                        "reason": "duplicate: the same trace and span id again later; the last one is kept",
                        "raw": ""})
        clean = spans_frame(clean[~dup].sort_values(["start", "trace_id"], kind="stable"))
    else:
        clean = empty_spans()
    quarantine = pd.DataFrame(bad, columns=["source", "source_row", "reason", "raw"]).astype("string")
    return OtlpResult(clean=clean, quarantine=quarantine, files=[str(f) for f in files], rows_in=seen)


__all__ = ["OtlpResult", "TraceFileError", "load_otlp", "trace_files"]
