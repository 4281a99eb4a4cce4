"""The scoring service's bearer token: the configured one, else one generated at first start and kept in the
home folder with owner-only permissions (as Jupyter does), so that no one who can reach the port can move a
model without it.

    token, path = service_token(settings)    # the service: configured, or read / generated at <home>/serving/token
    token = client_token(settings)           # a caller (deploy, tests): the same token, never generated here

Which endpoints want it (``serving/app.py``): ``/admin/*`` always; the scoring and reading endpoints when a
token is configured, or when the service listens beyond loopback; the probes never.
"""
from __future__ import annotations

import logging
import os
import secrets
import stat
import tempfile
from pathlib import Path

from configs.settings import reveal

log = logging.getLogger("cerebro.serving")

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def configured(cfg) -> str | None:
    """``serving.token`` as text (a plain string or a pydantic ``SecretStr``); None when unset or empty."""
    return reveal(cfg.token)


def token_path(settings) -> Path:
    return Path(settings.serving.token_file) if settings.serving.token_file else settings.home / "serving" / "token"


def loopback_only(host: str) -> bool:
    """Whether a service bound to ``host`` can only be reached from this machine."""
    return host.strip("[]").lower() in LOOPBACK or host.startswith("127.")


def _read(path: Path) -> str | None:
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        return None
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:  # readable by others: tighten it rather than serve with a token anyone may have read
        os.chmod(path, 0o600)
        log.warning("the token file %s was readable by others (mode %o); it is now owner-only (600)", path, mode)
    return token or None


def _create(path: Path) -> str:
    """A new random token in ``path`` (0600), written whole before it appears: a service starting at the
    same moment reads either no file or the complete one, and the first to link it wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".token-")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w") as out:
            out.write(token + "\n")
        os.link(tmp, path)
    except FileExistsError:
        return _read(path) or token
    finally:
        os.unlink(tmp)
    return token


def service_token(settings) -> tuple[str, Path | None]:
    """(token, where it is kept): the configured token (no file), else the file's, else a new one."""
    token = configured(settings.serving)
    if token:
        return token, None
    path = token_path(settings)
    token = _read(path)
    if token is None:
        token = _create(path)
        log.info("generated a token for the scoring service in %s (owner-only); clients send "
                 "`Authorization: Bearer <its content>`", path)
    return token, path


def client_token(settings) -> str | None:
    """The token a caller of the service sends: the configured one, else the file the service wrote."""
    token = configured(settings.serving)
    if token:
        return token
    try:
        return _read(token_path(settings))
    except OSError:
        return None


def client_headers(settings) -> dict:
    token = client_token(settings)
    return {"Authorization": f"Bearer {token}"} if token else {}
