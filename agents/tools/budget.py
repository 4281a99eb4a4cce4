"""Cut a tool's output to a token budget, so one tool call cannot flood a model's context.

Tokens are estimated locally (about four characters a token for English and JSON), which errs on the long
side for digits and punctuation; exact counts belong to the LLM gateway that sends the text.
"""
from __future__ import annotations

import json

CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def _dumps(value) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def cut_to_budget(value, max_tokens: int) -> tuple[object, bool]:
    """(the value, or a shorter one that fits, and whether it was cut). Lists lose items from the end (the
    tools put the most relevant first) and say how many were shown; long text is cut with a marker."""
    if estimate_tokens(_dumps(value)) <= max_tokens:
        return value, False
    if isinstance(value, list):
        n = len(value)
        keep = n
        while keep > 0 and estimate_tokens(_dumps(value[:keep])) > max_tokens - 20:
            keep = keep // 2 if keep > 8 else keep - 1
        return {"items": value[:keep], "cut": f"{keep} of {n} items shown (token budget {max_tokens})"}, True
    if isinstance(value, dict):
        out = dict(value)
        lists = sorted((k for k, v in out.items() if isinstance(v, list) and v), key=lambda k: -len(_dumps(out[k])))
        for key in lists:
            n = len(out[key])
            while len(out[key]) > 0 and estimate_tokens(_dumps(out)) > max_tokens:
                keep = len(out[key]) // 2 if len(out[key]) > 8 else len(out[key]) - 1
                out[key] = out[key][:keep]
                out["cut"] = f"{key}: {len(out[key])} of {n} items shown (token budget {max_tokens})"
            if estimate_tokens(_dumps(out)) <= max_tokens:
                return out, True
    text = value if isinstance(value, str) else _dumps(value)
    chars = max(0, max_tokens * CHARS_PER_TOKEN - 60)
    return text[:chars] + f"\n[cut: {len(text) - chars} more characters; token budget {max_tokens}]", True
