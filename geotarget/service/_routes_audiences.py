"""Audiences over HTTP: counts, and files written for download behind the same API key.

Two rules hold at this boundary on top of the library's own:

- an audience below the minimum size (100 unless the server says otherwise;
  a request may raise it, never lower it) gets 403 and its size is not told,
  so that narrow filters cannot single a customer out;
- a file is written only when asked for (``format``), for at most
  ``max_export_rows`` customers, and removed when it expires. The library
  never puts opted-out or suppressed customers in an audience.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import FileResponse

from geotarget.errors import AudienceTooSmallError, InvalidInputError, NotFoundError

from . import _deps
from ._schemas import AudienceOptions, AudienceRequest, AudienceResult
from ._scopes import Principal, require_scope

router = APIRouter(tags=["audiences"])

#: format -> (file suffix, media type, writer)
_FORMATS = {
    "csv": (".csv", "text/csv", lambda aud, path: aud.to_csv(path)),
    "parquet": (".parquet", "application/vnd.apache.parquet", lambda aud, path: aud.to_parquet(path)),
    "geojson": (".geojson", "application/geo+json", lambda aud, path: aud.to_geojson(path)),
    "customer_match_google": (".csv", "text/csv", lambda aud, path: aud.to_customer_match(path, platform="google")),
    "customer_match_meta": (".csv", "text/csv", lambda aud, path: aud.to_customer_match(path, platform="meta")),
}


def effective_min_size(body: AudienceOptions, request: Request) -> int:
    """The request's minimum size, refused when it is below the server's floor."""
    floor = request.app.state.settings.min_audience
    if body.min_size is not None and body.min_size < floor:
        raise InvalidInputError(f"min_size must be at least {floor} on this server, got {body.min_size}")
    return floor if body.min_size is None else body.min_size


def _library_kwargs(body: AudienceOptions) -> dict:
    """The request as keyword arguments of the library's audience calls."""
    kwargs = body.model_dump(exclude_none=True, exclude={"format", "min_size", "privacy", "epsilon"})
    if getattr(body, "points", None) is not None:
        kwargs["points"] = [(p.lat, p.lng) for p in body.points]
    if getattr(body, "ring_point", None) is not None:
        kwargs["ring_point"] = (body.ring_point.lat, body.ring_point.lng)
    if getattr(body, "exclude_within", None) is not None:
        kwargs["exclude_within"] = [(z.lat, z.lng, z.radius) for z in body.exclude_within]
    if getattr(body, "exclude_regions", None) is not None:
        kwargs["exclude_regions"] = [(r.layer, r.name) for r in body.exclude_regions]
    return kwargs


def audience_result(aud, fmt: str | None, min_size: int, request: Request) -> AudienceResult:
    """The response for a built audience, writing its file when ``fmt`` is given."""
    if len(aud) < min_size:
        raise AudienceTooSmallError(f"the audience is below the minimum size of {min_size:,} customers; widen it")
    summary = aud.summary()
    download = None
    if fmt is not None:
        download = _write(aud, fmt, request)
    return AudienceResult(**summary, download=download)


def _write(aud, fmt: str, request: Request) -> dict:
    limits = request.app.state.settings
    if len(aud) > limits.max_export_rows:
        raise InvalidInputError(
            f"the audience has {len(aud):,} customers, over this server's export limit of "
            f"{limits.max_export_rows:,}; narrow it, or export it with `geotarget audience -o FILE`")
    files = request.app.state.downloads
    suffix, media_type, writer = _FORMATS[fmt]
    token, path = files.reserve(suffix)
    try:
        writer(aud, path)
    except BaseException:
        files.discard(path)
        raise
    rows = len(aud) if not fmt.startswith("customer_match") else _csv_rows(path)
    item = files.publish(token, path, filename=f"audience-{token[:8]}{suffix}", media_type=media_type,
                         key_id=request.state.key_id, rows=rows)
    return {"url": f"/v1/downloads/{token}", "format": fmt, "filename": item.filename, "rows": item.rows,
            "bytes": item.size_bytes, "expires_at": datetime.fromtimestamp(item.expires, tz=timezone.utc)}


def _csv_rows(path) -> int:
    with open(path, "rb") as fh:
        return max(0, sum(1 for _ in fh) - 1)


def disclosed(eng, body: AudienceOptions, request: Request, who: Principal, build) -> AudienceResult:
    """An audience answered under the disclosure rules of the calling key (see :mod:`geotarget.disclosure`).

    Counts only: ``analyst``, ``audiences`` or ``admin``; exact for ``admin``,
    checked, noised and rounded for the others. A file: ``audiences``, plus
    ``pii`` for raw personal columns. ``build(guard, **kwargs)`` makes the call.
    """
    min_size = effective_min_size(body, request)
    guard = eng.disclosure(key_id=who.budget_id, admin=who.has("admin"), pii=who.has("pii"))
    kwargs = _library_kwargs(body)
    if body.format is None:
        if body.columns is not None:
            guard.check_columns(body.columns)
        counts = build(guard.audience_counts, privacy=body.privacy, epsilon=body.epsilon, min_size=min_size,
                       **kwargs)
        return AudienceResult(**counts)
    if not who.has("audiences"):
        raise HTTPException(403, "writing an audience file needs a key with the 'audiences' scope")
    if body.privacy is not None:
        raise InvalidInputError("privacy='dp' applies to counts; leave out format")
    aud = build(guard.audience, min_size=min_size, **kwargs)
    return audience_result(aud, body.format, max(min_size, guard.policy.min_audience), request)


@router.post("/audiences", response_model=AudienceResult, summary="Build an audience")
def create_audience(body: AudienceRequest, request: Request, eng=Depends(_deps.engine),
                    who: Principal = require_scope("analyst", "audiences", "admin")) -> AudienceResult:
    """Build an exact audience; returns its size, per-store counts and, with ``format``, a download link.

    Give one geography: ``stores`` or ``points`` with ``radius``; ``region_layer``
    with optional ``regions``; or ``ring_cell`` (or ``ring_point`` with ``res``)
    with ``k``. Then optional ``where``, ``exclude_within``, ``exclude_regions``
    and ``holdout`` (with ``campaign``). Keys without ``admin`` get counts
    noised and rounded, and small exclusion zones, filters on the id column or
    small groups refused (403); see the privacy documentation.
    """
    with request.app.state.settings.budget():
        return disclosed(eng, body, request, who, lambda call, **kwargs: call(**kwargs))


@router.get("/downloads/{token}", summary="Download an audience file", response_class=FileResponse,
            dependencies=[require_scope("audiences")],
            responses={200: {"description": "The file, in the format asked for.",
                             "content": {"text/csv": {}, "application/vnd.apache.parquet": {},
                                         "application/geo+json": {}}}})
def download(token: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
             request: Request) -> FileResponse:
    """A file written by ``POST /v1/audiences``, for the API key that asked for it, until it expires."""
    item = request.app.state.downloads.get(token, request.state.key_id)
    if item is None:
        raise NotFoundError("no such download; it may have expired (files live for a limited time) "
                            "or belong to another API key")
    return FileResponse(item.path, media_type=item.media_type, filename=item.filename)
