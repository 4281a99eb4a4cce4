"""Slack and Microsoft Teams channel exports (JSON) -> one document per thread.

* Slack: a workspace export folder (``<channel>/<YYYY-MM-DD>.json``, each a list of messages with
  ``ts``, ``user``/``user_profile``, ``text`` and ``thread_ts``), or one such JSON file.
* Teams: a JSON object with ``messages`` (Graph API shape: ``id``, ``replyToId``, ``createdDateTime``,
  ``from.user.displayName``, ``body.content`` in HTML).

A thread is a root message and its replies; each message becomes a list item, so a long thread is chunked
between messages, never inside one.
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

from rag.documents import Document, LoadError, LoadReport, stable_id
from rag.loaders._common import iso_utc, load_files

_TAG = re.compile(r"<[^>]+>")
_SLACK_LINK = re.compile(r"<([^>|]*)(?:\|([^>]*))?>")  # <url|label>, <@U123|name>, <#C1|channel>


def _message(raw: dict, where: str, teams: bool) -> dict:
    if not isinstance(raw, dict):
        raise LoadError(f"{where}: expected a message object, got {type(raw).__name__}")
    if teams:
        body = (raw.get("body") or {}).get("content")
        who = ((raw.get("from") or {}).get("user") or {}).get("displayName") or "unknown"
        stamp = iso_utc(raw.get("createdDateTime"), f"{where}: field `createdDateTime`")
        mid, parent = raw.get("id"), raw.get("replyToId")
        text = html.unescape(_TAG.sub(" ", body or ""))
    else:
        who = (raw.get("user_profile") or {}).get("real_name") or raw.get("user_name") or raw.get("user") or "unknown"
        stamp = iso_utc(raw.get("ts"), f"{where}: field `ts`")
        mid, parent = raw.get("ts"), raw.get("thread_ts")
        text = _SLACK_LINK.sub(lambda m: m.group(2) or m.group(1), raw.get("text") or "")
    if mid is None:
        raise LoadError(f"{where}: field `{'id' if teams else 'ts'}` is missing")
    return {"id": str(mid), "parent": str(parent) if parent else None, "who": who, "at": stamp,
            "text": " ".join(text.split())}


def thread_documents(raw_messages: list, channel: str, source: str, teams: bool) -> LoadReport:
    report = LoadReport()
    messages = []
    for i, raw in enumerate(raw_messages, start=1):
        if not teams and isinstance(raw, dict) and raw.get("subtype") in ("channel_join", "channel_leave"):
            continue
        try:
            messages.append(_message(raw, f"{source}: message {i}", teams))
        except LoadError as exc:
            report.skipped.append((f"{source}#{i}", str(exc)))
    threads: dict[str, list[dict]] = {}
    for m in messages:
        if not m["text"]:
            continue
        threads.setdefault(m["parent"] or m["id"], []).append(m)
    for root_id, thread in threads.items():
        thread.sort(key=lambda m: m["at"] or "")
        first = thread[0]["text"]
        title = f"#{channel}: {first[:80]}{'…' if len(first) > 80 else ''}"
        text = "\n".join(f"- {m['who']} ({m['at'] or 'unknown time'}): {m['text']}" for m in thread)
        report.documents.append(Document(
            doc_id=stable_id("chat", source, root_id), source=f"{source}#{root_id}", title=title, kind="chat",
            text=text, created=thread[0]["at"], updated=thread[-1]["at"],
            metadata={"channel": channel, "messages": len(thread), "relpath": Path(source).name}))
    return report


def _load_file(path: Path, root: Path) -> LoadReport:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LoadError(f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if isinstance(data, dict) and isinstance(data.get("messages"), list):  # Teams
        channel = data.get("channelName") or data.get("channel") or path.stem
        return thread_documents(data["messages"], str(channel), str(path.resolve()), teams=True)
    if isinstance(data, list):  # Slack: the folder is the channel
        if path.name in ("channels.json", "users.json", "integration_logs.json"):
            return LoadReport()
        channel = path.parent.name if path.parent != root.parent else path.stem
        return thread_documents(data, channel, str(path.resolve()), teams=False)
    raise LoadError(f"{path}: expected a Slack export (a list of messages) or a Teams export "
                    "({\"messages\": [...]})")


def load_chat(root: str | Path) -> LoadReport:
    return load_files(Path(root), (".json",), _load_file)
