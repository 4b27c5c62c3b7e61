"""What the service is configured with: API keys (kept only as hashes) and limits.

Nothing here imports FastAPI or uvicorn, so the CLI can read keys and refuse a
bad configuration before the server extra is even loaded.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from geotarget.audience.privacy import DEFAULT_MIN_AUDIENCE
from geotarget.errors import GeotargetError, MissingDependencyError
from geotarget.maps.heatmap import DEFAULT_K_MIN

__all__ = [
    "API_KEY_HEADER",
    "KEYS_ENV",
    "MIN_KEY_LENGTH",
    "KeyRing",
    "ServiceConfigError",
    "ServiceSettings",
    "require_server_extra",
]

#: The request header carrying the API key.
API_KEY_HEADER = "X-API-Key"

#: Environment variable holding comma-separated API keys.
KEYS_ENV = "GEOTARGET_API_KEYS"

#: Keys shorter than this are refused: they can be guessed.
MIN_KEY_LENGTH = 16

_HASH_PREFIX = "sha256:"

INSTALL_HINT = "the HTTP service needs the server extra: pip install 'geotarget[server]'"


class ServiceConfigError(GeotargetError, ValueError):
    """The service cannot start as configured (no API key, a malformed key file)."""


def require_server_extra() -> None:
    """Raise :class:`MissingDependencyError` with an install hint unless FastAPI and uvicorn import."""
    missing = []
    for name in ("fastapi", "uvicorn"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingDependencyError(f"{' and '.join(missing)} not installed; {INSTALL_HINT}")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class KeyRing:
    """API keys, held only as SHA-256 digests and checked in constant time.

    Parameters
    ----------
    keys : iterable of str
        Plain keys (at least :data:`MIN_KEY_LENGTH` characters), or digests
        written ``sha256:<64 hex digits>`` so that a key file need never hold
        a usable key.

    Examples
    --------
    >>> ring = KeyRing(["correct-horse-battery-staple"])
    >>> ring.check("correct-horse-battery-staple") is not None, ring.check("guess"), ring.check(None)
    (True, None, None)
    >>> len(ring)
    1
    """

    def __init__(self, keys: Iterable[str] = ()):
        digests: list[bytes] = []
        for raw in keys:
            key = str(raw).strip()
            if not key:
                continue
            if key.lower().startswith(_HASH_PREFIX):
                hexpart = key[len(_HASH_PREFIX):].strip().lower()
                try:
                    digest = bytes.fromhex(hexpart)
                except ValueError:
                    digest = b""
                if len(digest) != 32:
                    raise ServiceConfigError(f"API key digest must be 'sha256:' and 64 hex digits, got {key[:20]!r}...")
            else:
                if len(key) < MIN_KEY_LENGTH:
                    raise ServiceConfigError(
                        f"an API key is {len(key)} characters long; use at least {MIN_KEY_LENGTH}, e.g. "
                        "python -c 'import secrets; print(secrets.token_urlsafe(32))'")
                digest = _digest(key)
            if digest not in digests:
                digests.append(digest)
        self._digests = tuple(digests)

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"<KeyRing of {len(self)} key(s)>"

    def check(self, key: str | None) -> str | None:
        """The key's id (the first 12 hex digits of its digest) when it is valid, else None.

        Every stored digest is compared, each with :func:`hmac.compare_digest`,
        so the time taken does not tell which key came close.
        """
        if not key:
            return None
        digest = _digest(key)
        found = False
        for known in self._digests:
            found |= hmac.compare_digest(digest, known)
        return digest.hex()[:12] if found else None

    @classmethod
    def from_sources(cls, *, keys_file: str | os.PathLike | None = None, env: dict | None = None) -> KeyRing:
        """Keys from ``$GEOTARGET_API_KEYS`` (comma-separated) and a key file (one per line, ``#`` comments).

        Raises
        ------
        ServiceConfigError
            When the key file cannot be read, or a key is too short.
        """
        env = os.environ if env is None else env
        keys = [k for k in str(env.get(KEYS_ENV, "")).split(",") if k.strip()]
        if keys_file is not None:
            path = Path(keys_file)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ServiceConfigError(f"cannot read the key file {str(path)!r}: {exc.strerror or exc}") from None
            keys += [line.split("#", 1)[0].strip() for line in text.splitlines()]
        return cls(keys)


@dataclass(frozen=True)
class ServiceSettings:
    """Limits of one service instance; the defaults suit a public-facing deployment.

    Attributes
    ----------
    max_body_bytes : int
        Larger request bodies get 413.
    max_page_size : int
        The largest ``limit`` a listing accepts.
    max_export_rows : int
        Larger audiences are not written for download (422); export them with the CLI.
    min_audience : int
        The minimum audience size over HTTP; a request may raise it, never lower it.
    k_min : int
        The heatmap k-anonymity floor over HTTP; a request may raise it, never lower it.
    max_heatmap_features : int
        A heatmap with more cells or regions than this gets 422 (ask for a coarser res).
    download_ttl_s : float
        How long a written audience file stays downloadable.
    max_downloads : int
        Files kept at once; the oldest goes first.
    download_dir : str or None
        Where files are written (a fresh temporary folder when None, removed at shutdown).
    max_candidates : int
        Customers one audience request may examine before the exact test (413 beyond).
    max_area_km2 : float
        Area the disks of one radius request may add up to (points x area; 413 beyond).
    request_timeout_s : float
        Time one audience request may take (413 beyond; checked between steps).
    """

    max_body_bytes: int = 1_000_000
    max_page_size: int = 1000
    max_export_rows: int = 2_000_000
    min_audience: int = DEFAULT_MIN_AUDIENCE
    k_min: int = DEFAULT_K_MIN
    max_heatmap_features: int = 50_000
    download_ttl_s: float = 3600.0
    max_downloads: int = 200
    download_dir: str | None = None
    max_candidates: int = 5_000_000
    max_area_km2: float = 250_000.0
    request_timeout_s: float = 30.0

    def budget(self):
        """A :func:`geotarget.audience.work_budget` block with this server's limits."""
        from geotarget.audience.budget import work_budget

        return work_budget(max_candidates=self.max_candidates, max_area_km2=self.max_area_km2,
                           timeout_s=self.request_timeout_s)
