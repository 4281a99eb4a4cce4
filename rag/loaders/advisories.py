"""Security advisories in the OSV format (https://ossf.github.io/osv-schema/): one JSON object per file,
or a list of them. ``id`` and ``modified`` are required by the schema, and an advisory needs a
``summary`` or ``details`` to be worth indexing; anything else missing is simply left out of the text.
"""
from __future__ import annotations

import json
from pathlib import Path

from rag.documents import Document, LoadError, LoadReport, stable_id
from rag.loaders._common import iso_utc, load_files


def _affected(entry: dict) -> str:
    pkg = entry.get("package") or {}
    name = f"{pkg.get('ecosystem', '?')}/{pkg.get('name', '?')}"
    spans = []
    for rng in entry.get("ranges") or []:
        events = rng.get("events") or []
        intro = next((e["introduced"] for e in events if "introduced" in e), None)
        fixed = next((e["fixed"] for e in events if "fixed" in e), None)
        spans.append(f"introduced {intro}" + (f", fixed in {fixed}" if fixed else ", no fix yet"))
    versions = entry.get("versions") or []
    if versions and not spans:
        spans.append("versions " + ", ".join(map(str, versions[:10])) + ("…" if len(versions) > 10 else ""))
    return f"- {name}: {'; '.join(spans) or 'all versions'}"


def advisory_document(data, source: str, row: int) -> Document:
    where = f"{source}: advisory {row}"
    if not isinstance(data, dict):
        raise LoadError(f"{where}: expected an OSV object, got {type(data).__name__}")
    adv_id = data.get("id")
    if not isinstance(adv_id, str) or not adv_id:
        raise LoadError(f"{where}: field `id` is missing (OSV requires it)")
    where = f"{source}: advisory {adv_id}"
    modified = iso_utc(data.get("modified"), f"{where}: field `modified`")
    if modified is None:
        raise LoadError(f"{where}: field `modified` is missing (OSV requires it)")
    summary, details = data.get("summary") or "", data.get("details") or ""
    if not summary and not details:
        raise LoadError(f"{where}: neither `summary` nor `details` is given; nothing to index")
    severity = ", ".join(f"{s.get('type')} {s.get('score')}" for s in data.get("severity") or [] if isinstance(s, dict))
    affected = [_affected(a) for a in data.get("affected") or [] if isinstance(a, dict)]
    refs = [f"- {r.get('url')}" for r in data.get("references") or [] if isinstance(r, dict) and r.get("url")]
    aliases = ", ".join(data.get("aliases") or [])
    parts = [f"## Summary\n{summary or details.splitlines()[0]}"]
    if details:
        parts.append(f"## Details\n{details}")
    parts.append("## Affected packages\n" + ("\n".join(affected) or "- none listed")
                 + (f"\n\nSeverity: {severity}." if severity else "") + (f"\n\nAliases: {aliases}." if aliases else ""))
    if refs:
        parts.append("## References\n" + "\n".join(refs[:10]))
    packages = [f"{(a.get('package') or {}).get('ecosystem')}/{(a.get('package') or {}).get('name')}"
                for a in data.get("affected") or [] if isinstance(a, dict)]
    return Document(doc_id=stable_id("advisory", adv_id), source=f"{source}#{adv_id}",
                    title=f"{adv_id}: {summary or adv_id}", kind="advisory", text="\n\n".join(parts),
                    created=iso_utc(data.get("published"), f"{where}: field `published`"), updated=modified,
                    metadata={"advisory_id": adv_id, "aliases": data.get("aliases") or [], "packages": packages,
                              "relpath": Path(source).name})


def load_advisories(root: str | Path) -> LoadReport:
    def one(path: Path, _: Path) -> LoadReport:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise LoadError(f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
        report = LoadReport()
        for row, item in enumerate(data if isinstance(data, list) else [data], start=1):
            try:
                report.documents.append(advisory_document(item, str(path.resolve()), row))
            except LoadError as exc:
                if not isinstance(data, list):
                    raise
                report.skipped.append((f"{path}#{row}", str(exc)))
        return report

    return load_files(Path(root), (".json",), one)
