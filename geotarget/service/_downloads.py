"""Audience files written by the server, each behind an unguessable token, removed when they expire."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Download", "DownloadStore"]


@dataclass(frozen=True)
class Download:
    """One written file: its token, where it is, who may fetch it and until when."""

    token: str
    path: Path
    filename: str
    media_type: str
    key_id: str | None
    rows: int
    size_bytes: int
    created: float
    expires: float


class DownloadStore:
    """A folder of audience files with a time to live and a cap on their number.

    Expired files are removed whenever a file is added or fetched, and the
    whole folder at :meth:`close` when the store made it. A store made
    without a folder creates a private temporary one on first use (again
    after a close, as when an app's lifespan runs more than once).

    Examples
    --------
    >>> store = DownloadStore(ttl_s=60, max_files=2)
    >>> token, path = store.reserve(".csv")
    >>> _ = path.write_text("customer_id\\n")
    >>> d = store.publish(token, path, filename="a.csv", media_type="text/csv", key_id="k1", rows=0)
    >>> store.get(d.token, "k1") is not None, store.get(d.token, "k2")
    (True, None)
    >>> store.close()
    """

    def __init__(self, folder: str | Path | None = None, *, ttl_s: float = 3600.0, max_files: int = 200):
        self._own = folder is None
        self._folder = None if folder is None else Path(folder)
        self.ttl_s = float(ttl_s)
        self.max_files = int(max_files)
        self._items: dict[str, Download] = {}
        self._lock = threading.Lock()

    @property
    def folder(self) -> Path:
        """The folder files are written to (created, mode 0700 when temporary, on first use)."""
        with self._lock:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="geotarget-downloads-"))
            elif not self._own:
                self._folder.mkdir(parents=True, exist_ok=True)
            return self._folder

    def reserve(self, suffix: str) -> tuple[str, Path]:
        """A fresh token and the path to write its file to."""
        token = secrets.token_urlsafe(24)
        return token, self.folder / f"{token}{suffix}"

    def publish(self, token: str, path: Path, *, filename: str, media_type: str, key_id: str | None,
                rows: int) -> Download:
        """Make a written file downloadable by ``key_id`` until its time to live runs out."""
        now = time.time()
        size = Path(path).stat().st_size
        item = Download(token, Path(path), filename, media_type, key_id, int(rows), size, now, now + self.ttl_s)
        with self._lock:
            self._items[token] = item
            self._sweep(now)
        return item

    def discard(self, path: Path) -> None:
        """Remove a file that will not be published (a failed write)."""
        with contextlib.suppress(OSError):
            Path(path).unlink()

    def get(self, token: str, key_id: str | None) -> Download | None:
        """The download for ``token`` if it exists, has not expired and belongs to ``key_id``."""
        with self._lock:
            self._sweep(time.time())
            item = self._items.get(token)
        if item is None or not secrets.compare_digest(item.key_id or "", key_id or ""):
            return None
        return item

    def _sweep(self, now: float) -> None:
        expired = [t for t, d in self._items.items() if d.expires <= now]
        by_age = sorted((d.created, t) for t, d in self._items.items() if t not in expired)
        expired += [t for _, t in by_age[: max(0, len(by_age) - self.max_files)]]
        for token in expired:
            self.discard(self._items.pop(token).path)

    def __len__(self) -> int:
        return len(self._items)

    def close(self) -> None:
        """Remove every file (and the folder, when the store created it)."""
        with self._lock:
            for item in self._items.values():
                self.discard(item.path)
            self._items.clear()
            folder, self._folder = self._folder, (None if self._own else self._folder)
        if self._own and folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
