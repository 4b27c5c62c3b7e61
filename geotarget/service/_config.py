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
    "SCOPES",
    "KeyRing",
    "ServiceConfigError",
    "ServiceSettings",
    "parse_key_entry",
    "require_server_extra",
]

#: The request header carrying the API key.
API_KEY_HEADER = "X-API-Key"

#: Environment variable holding comma-separated API keys, each ``KEY=scope+scope``.
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


#: What a key may be allowed to do; a key holds one or more.
SCOPES = {
    "lookup": "stores near a point, promotions at a point (also for one customer)",
    "analyst": "aggregates: heatmaps and audience counts, under the disclosure rules",
    "audiences": "audience files without raw personal data",
    "pii": "raw email, phone and the policy's sensitive columns in audience files",
    "admin": "campaigns, exact audience counts, and the other writes",
}


def _parse_scopes(text: str, where: str) -> frozenset[str]:
    parts = [p.strip().lower() for p in text.replace("+", ",").split(",") if p.strip()]
    unknown = sorted(set(parts) - set(SCOPES))
    if unknown:
        raise ServiceConfigError(f"unknown scope {unknown[0]!r} {where}; use {', '.join(SCOPES)}")
    return frozenset(parts)


def parse_key_entry(entry, where: str = "") -> tuple[str, frozenset[str]]:
    """(key, scopes) from ``KEY=scope+scope``, ``KEY scope,scope`` or a (key, scopes) pair.

    Raises
    ------
    ServiceConfigError
        The entry names no scope, or an unknown one.
    """
    if isinstance(entry, tuple):
        key, scopes = entry
        scopes = _parse_scopes(scopes if isinstance(scopes, str) else ",".join(scopes), where)
    else:
        text = str(entry).strip()
        if "=" in text:
            key, _, rest = text.rpartition("=")
        else:
            key, _, rest = text.partition(" ")
        key, scopes = key.strip(), _parse_scopes(rest, where)
    if not scopes:
        shown = (str(key)[:6] + "...") if key else "''"
        raise ServiceConfigError(
            f"API key {shown} {where}has no scope; write it as KEY=scope+scope in {KEYS_ENV}, or "
            f"'KEY scope,scope' in a key file, with scopes from {', '.join(SCOPES)}")
    return str(key).strip(), scopes


class KeyRing:
    """API keys with their scopes, held only as SHA-256 digests and checked in constant time.

    Parameters
    ----------
    keys : iterable
        Entries ``KEY=scope+scope`` (or ``KEY scope,scope``, or ``(KEY, scopes)``)
        where KEY is a plain key (at least :data:`MIN_KEY_LENGTH` characters)
        or a digest written ``sha256:<64 hex digits>`` so that a key file need
        never hold a usable key. A key without a scope is refused.

    Examples
    --------
    >>> ring = KeyRing(["correct-horse-battery-staple=lookup+analyst"])
    >>> ring.check("correct-horse-battery-staple") is not None, ring.check("guess"), ring.check(None)
    (True, None, None)
    >>> sorted(ring.identify("correct-horse-battery-staple")[1])
    ['analyst', 'lookup']
    >>> len(ring)
    1
    """

    def __init__(self, keys: Iterable = ()):
        entries: dict[bytes, frozenset[str]] = {}
        for n, raw in enumerate(keys, 1):
            if isinstance(raw, str) and not raw.strip():
                continue
            key, scopes = parse_key_entry(raw, f"(entry {n}) ")
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
            entries[digest] = entries.get(digest, frozenset()) | scopes
        self._entries = tuple(entries.items())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<KeyRing of {len(self)} key(s)>"

    def identify(self, key: str | None) -> tuple[str, frozenset[str]] | None:
        """(key id, scopes) when the key is valid, else None.

        The key id is the first 12 hex digits of its digest. Every stored
        digest is compared, each with :func:`hmac.compare_digest`, so the time
        taken does not tell which key came close.
        """
        if not key:
            return None
        digest = _digest(key)
        found = None
        for known, scopes in self._entries:
            if hmac.compare_digest(digest, known):
                found = scopes
        return (digest.hex()[:12], found) if found is not None else None

    def check(self, key: str | None) -> str | None:
        """The key's id when it is valid, else None (see :meth:`identify`)."""
        who = self.identify(key)
        return None if who is None else who[0]

    @classmethod
    def from_sources(cls, *, keys_file: str | os.PathLike | None = None, env: dict | None = None) -> KeyRing:
        """Keys from ``$GEOTARGET_API_KEYS`` (``KEY=scope+scope``, comma-separated) and a key file.

        A key-file line is ``<key or sha256:digest> <scope>[,<scope>...]``;
        ``#`` starts a comment.

        Raises
        ------
        ServiceConfigError
            When the key file cannot be read, or a key is too short or has no scope.
        """
        env = os.environ if env is None else env
        keys = [k for k in str(env.get(KEYS_ENV, "")).split(",") if k.strip()]
        entries: list = [(k, f"in {KEYS_ENV} ") for k in keys]
        if keys_file is not None:
            path = Path(keys_file)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ServiceConfigError(f"cannot read the key file {str(path)!r}: {exc.strerror or exc}") from None
            for n, line in enumerate(text.splitlines(), 1):
                line = line.split("#", 1)[0].strip()
                if line:
                    key, _, scopes = line.partition(" ")
                    entries.append(((key, scopes), f"on line {n} of {str(path)!r} "))
        parsed = []
        for entry, where in entries:
            if isinstance(entry, tuple) and not entry[1].strip():
                raise ServiceConfigError(
                    f"API key {entry[0][:6]}... {where}has no scope; write '<key> <scope>[,<scope>...]' "
                    f"with scopes from {', '.join(SCOPES)}")
            parsed.append(parse_key_entry(entry, where))
        return cls(parsed)


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
    max_scanned : int
        Customer rows one aggregate request (heatmap, trade areas, Huff, sites, lift) may read, counted once per
        pass: one per resolution or region layer it indexes (413 beyond).
    max_cells : int
        Cells or regions one aggregate request may compute before its k-anonymity floor: a fine res over a wide
        area, or a layer of many regions (413 beyond, naming ``res`` or ``region_layer``).
    request_timeout_s : float
        Time one audience or aggregate request may take (413 beyond; checked between steps).
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
    max_scanned: int = 100_000_000
    max_cells: int = 2_000_000

    def budget(self):
        """A :func:`geotarget.audience.work_budget` block with this server's limits."""
        from geotarget.audience.budget import work_budget

        return work_budget(max_candidates=self.max_candidates, max_area_km2=self.max_area_km2,
                           timeout_s=self.request_timeout_s, max_scanned=self.max_scanned, max_cells=self.max_cells)
