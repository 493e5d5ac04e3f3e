"""The viewer's sign-in session: a signed, expiring cookie naming an API key by its public id — never the key.

Why a cookie at all: a browser cannot send ``Authorization: Bearer`` with a link or an ``<img>``, so the
viewer takes an API key once (``/view/signin``) and gives the browser a session instead. The cookie holds
``v1.<key id>.<expiry>.<HMAC-SHA256>``: the key id is public (it is what ``headwater keys list`` shows), the
HMAC (keyed by a server secret) makes it unforgeable and the expiry makes it end. Every request looks the
key id up again (:meth:`~headwater.catalog.Catalog.key_principal`), so a revoked key ends its sessions at
once, in every server process.

**The signing secret** is one file, created once (random, mode 0600, written atomically so that the workers
of ``serve --workers N`` starting together agree on one) and read by every process: by default beside a
SQLite catalog (``catalog.sqlite.session-secret``), else ``$XDG_CONFIG_HOME/headwater/session-secret``;
``serve --session-secret-file`` names another (servers of one PostgreSQL catalog on several machines must
share it). Deleting the file signs everybody out.

Example:
    >>> import os, tempfile, time
    >>> secret = load_session_secret(os.path.join(tempfile.mkdtemp(), "secret"))
    >>> signer = SessionSigner(secret, max_age=3600)
    >>> cookie = signer.sign("0123456789ab")
    >>> signer.key_id(cookie)
    '0123456789ab'
    >>> signer.key_id(cookie[:-1] + ("0" if cookie[-1] != "0" else "1")) is None   # tampered
    True
    >>> signer.key_id(signer.sign("0123456789ab", now=time.time() - 7200)) is None  # expired
    True
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import time

from ..errors import ServerConfigError

__all__ = ["COOKIE_NAME", "SessionSigner", "load_session_secret", "default_session_secret_file"]

COOKIE_NAME = "headwater_session"
"""The session cookie's name (its path is ``/view``)."""

_VERSION = "v1"
_KEY_ID = re.compile(r"[0-9a-f]{12}\Z")
_MIN_SECRET = 32


def default_session_secret_file(catalog: str) -> str:
    """Where the signing secret lives when not configured: beside a SQLite catalog file, else in the user's
    config folder (a PostgreSQL catalog has no folder of its own)."""
    if "://" not in catalog:
        return os.path.abspath(os.path.expanduser(catalog)) + ".session-secret"
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "headwater", "session-secret")


def load_session_secret(path: str) -> bytes:
    """The secret in ``path``, created (random, 0600) if the file does not exist yet.

    Created by writing a temp file and hard-linking it to ``path``: of processes starting together exactly
    one link succeeds and every other reads the winner's complete file. Raises
    :class:`~headwater.server.errors.ServerConfigError` for a file too short to be a secret or unreadable.
    """
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(path):
        folder = os.path.dirname(path)
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_hex(32) + "\n")
                with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
                    os.link(tmp, path)
            finally:
                os.unlink(tmp)
        except OSError as err:
            raise ServerConfigError(f"cannot create the viewer's session secret {path}: {err}") from None
    try:
        with open(path, "rb") as f:
            secret = f.read().strip()
    except OSError as err:
        raise ServerConfigError(f"cannot read the viewer's session secret {path}: {err}") from None
    if len(secret) < _MIN_SECRET:
        raise ServerConfigError(f"the viewer's session secret {path} holds {len(secret)} bytes; it needs at least "
                                f"{_MIN_SECRET} (delete it to have a new one made)")
    return secret


class SessionSigner:
    """Signs and checks session cookie values (see the module docstring); ``max_age`` in seconds."""

    def __init__(self, secret: bytes, *, max_age: int) -> None:
        if len(secret) < _MIN_SECRET:
            raise ServerConfigError(f"a session secret needs at least {_MIN_SECRET} bytes")
        if max_age < 1:
            raise ServerConfigError(f"session max age must be at least 1 second, got {max_age}")
        self._secret = hashlib.sha256(b"headwater viewer session\0" + secret).digest()
        self.max_age = max_age

    def _mac(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode("ascii"), hashlib.sha256).hexdigest()

    def sign(self, key_id: str, *, now: float | None = None) -> str:
        """A cookie value for the key ``key_id`` that expires ``max_age`` seconds after ``now``."""
        if not _KEY_ID.match(key_id):
            raise ValueError(f"not an API key id: {key_id!r}")
        expires = int((time.time() if now is None else now) + self.max_age)
        payload = f"{_VERSION}.{key_id}.{expires}"
        return f"{payload}.{self._mac(payload)}"

    def key_id(self, value: str, *, now: float | None = None) -> str | None:
        """The key id a cookie value names, or None when it is malformed, forged or expired."""
        parts = value.split(".")
        if len(parts) != 4 or parts[0] != _VERSION or not _KEY_ID.match(parts[1]) or not parts[2].isdigit():
            return None
        payload = ".".join(parts[:3])
        if not hmac.compare_digest(self._mac(payload), parts[3]):
            return None
        if int(parts[2]) <= (time.time() if now is None else now):
            return None
        return parts[1]
