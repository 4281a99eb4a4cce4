"""What every provider adapter does, and how a failure is classified.

An adapter turns an :class:`LlmRequest` into one SDK call and the SDK's answer back into an
:class:`LlmResponse`. It never retries (the SDKs' own retries are switched off): the gateway's policy decides.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC

from agents.llm.types import LlmRequest, LlmResponse


@dataclass
class ProviderFailure(Exception):
    """One failed try. ``retryable``: worth trying the same provider again (timeout, 429, 5xx, 529,
    malformed); ``retry_after``: seconds the server asked to wait."""
    provider: str
    reason: str
    retryable: bool
    status: int | None = None
    retry_after: float | None = None

    def __str__(self) -> str:
        return f"{self.provider}: {self.reason}"


class Provider:
    kind = "base"

    def __init__(self, name: str, config):
        self.name = name
        self.config = config
        self._client = None
        self._lock = threading.Lock()

    def _make_client(self):
        """The SDK client, built once on first use (the SDK is imported only then)."""
        raise NotImplementedError

    @property
    def client(self):
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    @property
    def self_hosted(self) -> bool:
        return bool(getattr(self.config, "self_hosted", False))

    def configured(self) -> str | None:
        """None when calls can be made, else why not (no key ...): such a provider is skipped, not tried."""
        return None

    def complete(self, request: LlmRequest, model: str, max_tokens: int,
                 on_text: Callable[[str], None] | None = None) -> LlmResponse:
        raise NotImplementedError

    def count_tokens(self, request: LlmRequest, model: str) -> int | None:
        """Input tokens by the API's counter, or None where it has none (the gateway estimates)."""
        return None

    def probe(self) -> tuple[bool, str]:
        """Whether the endpoint answers (for `cerebro llm providers`), and a short word on it."""
        return True, ""


def tool_arguments(provider: str, text: str) -> dict:
    """A tool call's arguments from their JSON text: broken JSON or a non-object is a malformed (retryable) answer."""
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise ProviderFailure(provider, f"malformed tool call: arguments are not JSON ({exc.msg})", True) from None
    if not isinstance(value, dict):
        raise ProviderFailure(provider, "malformed tool call: arguments are not an object", True)
    return value


def retry_after_of(headers) -> float | None:
    """Seconds from a ``retry-after`` header (seconds, or an HTTP date); ``retry-after-ms`` wins when present."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from datetime import datetime
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


def classify(provider: str, exc: Exception, sdk) -> ProviderFailure:
    """Map an ``anthropic`` or ``openai`` SDK exception (``sdk`` is the module) to a :class:`ProviderFailure`."""
    if isinstance(exc, ProviderFailure):
        return exc
    if isinstance(exc, sdk.APITimeoutError):
        return ProviderFailure(provider, "timeout", True)
    if isinstance(exc, sdk.APIStatusError):
        status = exc.status_code
        retryable = status in (408, 409, 429) or status >= 500
        word = {429: "rate limited (429)", 529: "overloaded (529)"}.get(status, f"HTTP {status}")
        return ProviderFailure(provider, word, retryable, status, retry_after_of(exc.response.headers))
    if isinstance(exc, sdk.APIConnectionError):
        # A refused connection or a body cut short (the SDK wraps both).
        return ProviderFailure(provider, f"connection: {_cause(exc)}", True)
    if isinstance(exc, (sdk.APIResponseValidationError, ValueError, KeyError, TypeError, AttributeError)):
        return ProviderFailure(provider, f"malformed response: {type(exc).__name__}", True)
    return ProviderFailure(provider, f"{type(exc).__name__}: {exc}", False)


def _cause(exc: BaseException) -> str:
    inner = exc.__cause__ or exc.__context__
    return f"{type(inner).__name__}" if inner else str(exc)[:80]
