"""The FastAPI application: lifespan, API-key check, body limit, and errors as JSON.

Every error body has the same shape, ``{"error": CODE, "message": TEXT}``
(validation errors add ``"errors"``, one per field). Library errors map to
status codes in one table, :data:`STATUS_OF`.
"""

from __future__ import annotations

import contextlib
import logging
import re

from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from starlette.exceptions import HTTPException as StarletteHTTPException

from geotarget import __version__
from geotarget.errors import GeotargetError, InvalidInputError, NotFoundError, PrivacyError, ResourceLimitError

from ._config import API_KEY_HEADER, KeyRing, ServiceSettings
from ._downloads import DownloadStore
from ._schemas import ERROR_RESPONSES

log = logging.getLogger("geotarget.service")

#: Library error -> (HTTP status, error code); the first matching class wins.
#: A privacy rule (an audience below the minimum size) is 403: the request is
#: well formed, but the server will not release that data.
STATUS_OF: list[tuple[type[Exception], int, str]] = [
    (NotFoundError, 404, "not_found"),
    (PrivacyError, 403, "privacy"),
    (ResourceLimitError, 413, "too_much_work"),
    (InvalidInputError, 422, "invalid_input"),
    (GeotargetError, 409, "conflict"),
]

_REASONS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
            409: "conflict", 413: "too_large", 415: "unsupported_media_type", 422: "invalid_input"}


def error_body(code: str, message: str, **extra) -> dict:
    """The JSON body of every error response."""
    return {"error": code, "message": message, **extra}


class BodyLimit:
    """ASGI middleware answering 413 to a request body over ``max_bytes``, declared or streamed."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                return await self._reply(send, 400, error_body("bad_request", "Content-Length is not a number"))
            if too_big:
                return await self._reply(send, 413, self._message())
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, self._message()["message"])
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except HTTPException as exc:
            if exc.status_code != 413 or started:
                raise
            await self._reply(send, 413, self._message())

    def _message(self) -> dict:
        return error_body("too_large", f"request body is over the limit of {self.max_bytes:,} bytes")

    @staticmethod
    async def _reply(send, status: int, body: dict) -> None:
        response = JSONResponse(body, status_code=status)
        await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


#: Tails of library messages that list what the database holds (store ids, columns, layers, regions,
#: campaigns): useful at a terminal, but over HTTP they would show one key's data to another.
_LISTINGS = re.compile(
    r";\s*(?:known stores include|available columns|numeric columns|layers|campaigns include"
    r"|there are no campaigns yet)[^;]*",
    re.IGNORECASE)
_REGION_SAMPLE = re.compile(r"(not found in layer '[^']*'); e\.g\. [^;]*")
_PATH = re.compile(r"""(?P<q>['"])(?:/|~|[A-Za-z]:\\)[^'"]*(?P=q)|(?<![\w.])/(?:[\w.@+-]+/)+[\w.@+-]*""")


def public_message(message: str) -> str:
    """A library message fit for any API key: no file paths, no listings of stores, columns or layers.

    Examples
    --------
    >>> public_message("store 'X9' not found; known stores include: S001, S002")
    "store 'X9' not found"
    >>> public_message("database '/srv/data/geo.duckdb' is open read-only; open it with read_only=False")
    "database '<file>' is open read-only; open it with read_only=False"
    >>> public_message("unknown column 'zz' in filter; available columns: customer_id, lat")
    "unknown column 'zz' in filter"
    """
    text = _REGION_SAMPLE.sub(r"\1", str(message))
    text = _LISTINGS.sub("", text)
    return _PATH.sub(lambda m: f"{m.group('q')}<file>{m.group('q')}" if m.group("q") else "<file>", text)


def _field(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = [{"field": _field(e.get("loc", ())), "in": (e.get("loc") or ["body"])[0],
                   "message": str(e.get("msg", "invalid value")).removeprefix("Value error, ")} for e in exc.errors()]
        message = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]) or "invalid request"
        return JSONResponse(error_body("invalid_input", message, errors=errors), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = _REASONS.get(exc.status_code, "error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(GeotargetError)
    async def _library(request: Request, exc: GeotargetError):
        status, code = next((s, c) for cls, s, c in STATUS_OF if isinstance(exc, cls))
        return JSONResponse(error_body(code, public_message(str(exc))), status_code=status)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        # a bug, not bad input: logged in full here, answered without details (no paths, no data)
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(error_body("internal", "the server failed to answer; the error was logged"),
                            status_code=500)


def _auth_dependency(keys: KeyRing | None):
    header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False,
                          description="An API key configured on the server (GEOTARGET_API_KEYS or --keys-file).")

    async def require_key(request: Request, key: str | None = Security(header)) -> str | None:
        # async: a hash and a comparison, run inline rather than on the thread pool
        if keys is None:  # started with --insecure-no-auth
            request.state.key_id = None
            request.state.scopes = None  # every scope (see _scopes.principal)
            return None
        who = keys.identify(key)
        if who is None:
            message = f"missing {API_KEY_HEADER} header" if not key else f"invalid {API_KEY_HEADER}"
            raise HTTPException(401, message, headers={"WWW-Authenticate": "ApiKey"})
        request.state.key_id, request.state.scopes = who
        return who[0]

    return require_key


def build_app(engine, *, keys: KeyRing | None, settings: ServiceSettings, owns_engine: bool,
              alongside=None) -> FastAPI:
    """Assemble the app around one engine (see :func:`geotarget.service.create_app`)."""
    from . import _routes_audiences, _routes_campaigns, _routes_lookup, _routes_measure, _routes_privacy, _routes_trade

    downloads = DownloadStore(settings.download_dir, ttl_s=settings.download_ttl_s, max_files=settings.max_downloads)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            with alongside(engine) if alongside is not None else contextlib.nullcontext():
                yield
        finally:
            downloads.close()
            if owns_engine:
                engine.close()

    app = FastAPI(
        title="geotarget",
        version=__version__,
        summary="Exact hyperlocal audiences, promotions and heatmaps over HTTP.",
        description=(
            f"Every endpoint under `/v1` needs an API key in the `{API_KEY_HEADER}` header (401 without one). "
            "Bad input gets 422 naming the field; an audience below the minimum size gets 403; request bodies "
            f"over {settings.max_body_bytes:,} bytes get 413. Heatmaps keep the k-anonymity floor."),
        lifespan=lifespan,
        redoc_url=None,
        docs_url=None,
    )
    _install_docs(app)
    app.state.engine = engine
    app.state.settings = settings
    app.state.downloads = downloads
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    _install_error_handlers(app)

    app.include_router(_routes_lookup.health)
    auth = [Depends(_auth_dependency(keys))]
    # _routes_trade and _routes_measure (the lift readout) are for keys with the analyst scope; erasure needs admin
    for module in (_routes_lookup, _routes_campaigns, _routes_audiences, _routes_trade, _routes_measure,
                   _routes_privacy):
        app.include_router(module.router, prefix="/v1", dependencies=auth, responses=ERROR_RESPONSES)
    return app


#: Where the Swagger UI files are served from (the pages work without internet access).
DOCS_ASSETS = "/docs/assets"


def _install_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI for the OpenAPI schema, its script and styles served by this server.

    The files come from the ``swagger-ui-bundle`` package (part of the server
    extra), so the page works where no CDN is reachable. Like ``/openapi.json``
    it needs no API key: it describes the API and holds no data.
    """
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(
            openapi_url=app.openapi_url, title=f"{app.title} API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png")
