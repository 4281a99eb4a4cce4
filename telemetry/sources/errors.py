"""What every source says when it cannot be read, and the name a message may use for it.

A :class:`SourceError` is the user's to fix (a host that does not answer, no credentials, nothing
configured); the command line prints its message as one line and no traceback. Messages and provenance
columns name a source by :func:`without_credentials`, so that a ``user:password@`` never reaches a log,
the lake or the quarantine.
"""
from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


class SourceError(ValueError):
    """A source cannot be read; the message names the source, what is wrong and what is expected."""


def without_credentials(url: str) -> str:
    """``url`` without its ``user:password@`` part (and unchanged when it has none)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
