"""API key scopes as one reusable FastAPI dependency: ``require_scope("analyst")``.

A route file adds it in one line, for one route or for a whole router::

    @router.get("/v1/lift", dependencies=[require_scope("analyst")])
    router = APIRouter(dependencies=[require_scope("admin")])

or receives the caller (key id and scopes) as a parameter::

    def erase(..., who: Principal = require_scope("admin")): ...

With several scopes, any one of them is enough. A valid key without the scope
gets 403 naming the scopes that would do; a missing or wrong key is answered
401 by the authentication that runs first. A server started with
``--insecure-no-auth`` (loopback only) treats every request as holding every
scope.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request

from ._config import SCOPES

__all__ = ["Principal", "principal", "require_scope"]


@dataclass(frozen=True)
class Principal:
    """Who is asking: the key's id (None without authentication) and its scopes."""

    key_id: str | None
    scopes: frozenset[str]

    def has(self, *scopes: str) -> bool:
        """Whether the key holds any of ``scopes``."""
        return bool(self.scopes & set(scopes))

    @property
    def budget_id(self) -> str:
        """The name its differential-privacy budget is kept under."""
        return f"key:{self.key_id}" if self.key_id else "key:unauthenticated"


def principal(request: Request) -> Principal:
    """The caller of this request, as the authentication dependency recorded it."""
    scopes = getattr(request.state, "scopes", None)
    return Principal(getattr(request.state, "key_id", None), frozenset(SCOPES) if scopes is None else scopes)


def require_scope(*scopes: str):
    """A dependency admitting keys that hold any of ``scopes``; it yields the :class:`Principal`."""
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"unknown scope(s) {unknown}; use {', '.join(SCOPES)}")

    async def check(request: Request) -> Principal:
        who = principal(request)
        if not who.has(*scopes):
            needed = " or ".join(repr(s) for s in scopes)
            raise HTTPException(403, f"this API key lacks the {needed} scope needed here; "
                                     "ask the server's operator for a key with it")
        return who

    return Depends(check)
