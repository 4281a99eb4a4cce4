"""Query processing: what the operator wants (intent), what they named (services, metrics), and when.

Intent is one of ``investigation`` ("why is checkout slow since 14:00"), ``action_request`` ("restart the
payment pods", "how do I free disk on the database") or ``knowledge_question`` ("what does the gateway
call"). It is decided by cue words with weights, because the three intents have plain lexical markers in
operators' language and a rule is inspectable; a tie with a time range or a symptom is an investigation.

Time expressions become concrete UTC ranges relative to a given ``now`` (times of day are read as UTC):
"since 14:00", "since 2pm", "in the last 2 hours", "past 30 min", "yesterday", "today", "this morning",
"between 13:00 and 14:30", "around 09:15" (±30 minutes), "3 hours ago", "on 2026-11-19".
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from rag.entities import Catalog

INTENTS = ("investigation", "action_request", "knowledge_question")

_ACTION_START = re.compile(
    r"^\s*(please\s+|can you\s+|could you\s+|let'?s\s+)?(restart|roll ?back|revert|scale|drain|kill|flush|purge|"
    r"raise|increase|bump|clear|free|fail ?over|reboot|redeploy|disable|enable|rotate|grow|add|block|throttle|"
    r"rate[- ]limit|evict|terminate|cancel|stop|shed)\b", re.IGNORECASE)
_CUES = {
    "action_request": [
        (r"\bhow (do|can|should) (i|we)\b", 2), (r"\bhow to\b", 2), (r"\bwhat should (i|we) do\b", 2),
        (r"\bwhat (do|can) (i|we) do\b", 3), (r"\bsteps? to\b", 2), (r"\bmitigat\w*", 2), (r"\b(fix|resolve|remediat\w*|recover)\b", 1.5),
        (r"\b(restart|roll ?back|rollback|scale (out|up)|free up|clean ?up|get rid of)\b", 1.5),
        (r"\bshould (i|we)\b", 1),
    ],
    "investigation": [
        (r"\bwhy\b", 2.5), (r"\bwhat('s| is)? (caus\w+|going on|happening|wrong)\b", 2.5), (r"\broot cause\b", 2),
        (r"\binvestigat\w*", 2), (r"\b(is|are) \S+ (down|slow|failing|erroring|timing out)\b", 2),
        (r"\b(spik\w*|jump\w*|climb\w*|dropp\w*|degraded|timing out|timeouts?|firing|paged|alert\w*)\b", 1),
        (r"\b(errors?|5xx|500s|slow|latency|oom\w*|full|exhausted|leak\w*|saturat\w*|throttl\w*)\b", 0.75),
        (r"\b(has this happened|happened before|last time|past incidents?|similar incidents?)\b", 1.5),
    ],
    "knowledge_question": [
        (r"\bwhat (is|are|does|do)\b", 2), (r"\bexplain\b", 2), (r"\bhow does\b", 2), (r"\bdescribe\b", 2),
        (r"\bwhich services?\b", 1.5), (r"\bwho (calls|uses|depends)\b", 2), (r"\bdepends? on\b", 1),
        (r"\b(difference between|meaning of|what happens (when|if))\b", 2), (r"\b(slo|policy|overview)\b", 1),
    ],
}


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime
    text: str  # the words it was read from

    def to_dict(self) -> dict:
        return {"start": self.start.isoformat().replace("+00:00", "Z"),
                "end": self.end.isoformat().replace("+00:00", "Z"), "text": self.text}


@dataclass
class QueryAnalysis:
    text: str
    intent: str
    services: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    time_range: TimeRange | None = None
    intent_scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["time_range"] = self.time_range.to_dict() if self.time_range else None
        return data


def classify_intent(text: str, has_time: bool = False, has_entities: bool = False) -> tuple[str, dict[str, float]]:
    """The intent with the highest cue score. Without any cue, a statement naming a service or a metric
    ("cart memory keeps creeping up") reports a symptom: an investigation; anything else is a question."""
    scores = {intent: sum(w for pattern, w in cues if re.search(pattern, text, re.IGNORECASE))
              for intent, cues in _CUES.items()}
    if _ACTION_START.match(text):
        scores["action_request"] += 3
    if has_time:
        scores["investigation"] += 1
    best = max(scores.values())
    if best == 0:
        return ("investigation" if has_entities else "knowledge_question"), scores
    winners = [i for i in INTENTS if scores[i] == best]
    return (winners[0] if len(winners) == 1 else
            "investigation" if "investigation" in winners else winners[0]), scores


_UNITS = {"m": 1, "min": 1, "mins": 1, "minute": 1, "minutes": 1, "h": 60, "hr": 60, "hrs": 60, "hour": 60,
          "hours": 60, "d": 1440, "day": 1440, "days": 1440, "w": 10080, "week": 10080, "weeks": 10080}
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "ten": 10,
            "twelve": 12, "fifteen": 15, "thirty": 30, "couple of": 2, "few": 3}
_CLOCK = r"(\d{1,2})(?::(\d{2}))?\s*(am|pm)?(?:\s*utc)?"
_NUM = r"(\d+(?:\.\d+)?|an?|one|two|three|four|five|six|ten|twelve|fifteen|thirty|couple of|few)"
_UNIT = r"(minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w)"


def _clock(now: datetime, hour: str, minute: str | None, ampm: str | None) -> datetime | None:
    h, m = int(hour), int(minute or 0)
    if ampm:
        if not 1 <= h <= 12:
            return None
        h = h % 12 + (12 if ampm.lower() == "pm" else 0)
    if h > 23 or m > 59:
        return None
    return now.replace(hour=h, minute=m, second=0, microsecond=0)


def _amount(word: str) -> float:
    return _NUMBERS[word.lower()] if word.lower() in _NUMBERS else float(word)


def parse_time_range(text: str, now: datetime) -> TimeRange | None:
    """The first time expression in ``text`` as a UTC range ending no later than ``now``."""
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    t = text.lower()

    if m := re.search(rf"\bbetween\s+{_CLOCK}\s+and\s+{_CLOCK}", t) or \
            re.search(rf"\bfrom\s+{_CLOCK}\s+(?:to|until|till)\s+{_CLOCK}", t):
        a, b = _clock(now, *m.group(1, 2, 3)), _clock(now, *m.group(4, 5, 6))
        if a and b:
            if b <= a:
                a -= timedelta(days=1)
            if a > now:
                a, b = a - timedelta(days=1), b - timedelta(days=1)
            return TimeRange(a, min(b, now), m.group(0))
    if m := re.search(r"\bsince yesterday\b", t):
        return TimeRange(today - timedelta(days=1), now, m.group(0))
    if (m := re.search(rf"\bsince\s+{_CLOCK}", t)) and (m.group(2) or m.group(3)) \
            and (start := _clock(now, *m.group(1, 2, 3))):
        return TimeRange(start - timedelta(days=1) if start > now else start, now, m.group(0))
    if m := re.search(rf"\b(?:in\s+the\s+|over\s+the\s+|for\s+the\s+|during\s+the\s+)?(?:last|past)\s+{_NUM}?\s*{_UNIT}\b", t):
        minutes = _amount(m.group(1) or "1") * _UNITS[m.group(2)]
        return TimeRange(now - timedelta(minutes=minutes), now, m.group(0))
    if m := re.search(rf"\b{_NUM}\s*{_UNIT}\s+ago\b", t):
        return TimeRange(now - timedelta(minutes=_amount(m.group(1)) * _UNITS[m.group(2)]), now, m.group(0))
    if (m := re.search(rf"\b(?:around|at|about)\s+{_CLOCK}", t)) and (m.group(2) or m.group(3)) \
            and (at := _clock(now, *m.group(1, 2, 3))):
        at = at - timedelta(days=1) if at > now else at
        return TimeRange(at - timedelta(minutes=30), min(at + timedelta(minutes=30), now), m.group(0))
    if m := re.search(r"\bon\s+(\d{4}-\d{2}-\d{2})\b", t):
        day = datetime.fromisoformat(m.group(1)).replace(tzinfo=UTC)
        return TimeRange(day, min(day + timedelta(days=1), now), m.group(0))
    if m := re.search(r"\byesterday\b", t):
        return TimeRange(today - timedelta(days=1), today, m.group(0))
    if m := re.search(r"\bthis morning\b", t):
        return TimeRange(today, min(today + timedelta(hours=12), now), m.group(0))
    if m := re.search(r"\b(today|so far today)\b", t):
        return TimeRange(today, now, m.group(0))
    return None


def analyse_query(text: str, catalog: Catalog, now: datetime | None = None) -> QueryAnalysis:
    """Intent, services, metrics and time range of an operator's question (no model involved)."""
    if not text or not text.strip():
        raise ValueError("the query is empty; ask a question, e.g. \"why is checkout slow since 14:00\"")
    time_range = parse_time_range(text, now or datetime.now(UTC))
    services, metrics = catalog.find_services(text), catalog.find_metrics(text)
    intent, scores = classify_intent(text, has_time=time_range is not None, has_entities=bool(services or metrics))
    return QueryAnalysis(text=text.strip(), intent=intent, services=services, metrics=metrics,
                         time_range=time_range, intent_scores=scores)
