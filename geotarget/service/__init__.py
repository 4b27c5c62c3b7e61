"""geotarget over HTTP: a thin FastAPI layer over :class:`geotarget.Engine`.

Install the extra with ``pip install 'geotarget[server]'`` and run
``geotarget serve``. Importing :mod:`geotarget` never imports this package;
importing it does not import FastAPI either, until an app is built.

Endpoints (all but ``/health`` need an API key in the ``X-API-Key`` header)::

    GET    /health                           liveness, no key
    GET    /v1/stores/near?lat&lng&radius&limit
    GET    /v1/promotions?lat&lng[&at][&customer_id]
    GET    /v1/campaigns[?status&limit&offset]     POST /v1/campaigns
    GET    /v1/campaigns/{name_or_id}              PATCH, DELETE the same
    POST   /v1/campaigns/{name_or_id}/pause        .../resume, .../audience
    POST   /v1/audiences                     counts, and a download link with "format"
    GET    /v1/downloads/{token}             the file, for the key that asked for it
    GET    /v1/heatmap?res&metric&region_layer&k_min   GeoJSON, above the floor
    GET    /v1/campaigns/{name_or_id}/lift?metric&by&start&end&kind&k_min   readout (analyst keys)
    GET    /docs, /openapi.json              the API description (no key: it holds no data)

Keys come from ``$GEOTARGET_API_KEYS`` (``KEY=scope+scope``, comma-separated)
or a key file (``<key or sha256:digest> <scope>[,<scope>...]`` a line), and
are kept in memory only as SHA-256 digests. The scopes are ``lookup``,
``analyst``, ``audiences``, ``pii`` and ``admin`` (docs/privacy.md says what
each may learn); a key without one stops the server at start-up. The server
refuses to start without a key unless told ``insecure_no_auth`` (loopback
addresses only).

Status codes: 401 missing or wrong key; 403 a key without the scope, or a
privacy rule (an audience below the minimum size, whose size is then not
told; a refused difference; an exhausted privacy budget); 404 an unknown store,
layer, campaign or download; 413 a body over 1 MB, an audience over the
work budget (the area of its disks, the customers it would examine, its
time), or a heatmap, trade-area, Huff, site or lift request over its own
(customer rows read, cells or regions computed before the floor, time), each
naming the field and the setting (:class:`ServiceSettings`); 422 bad input,
naming the field. No client
input gets a 5xx, and no error body shows a file path or lists the stores,
columns or layers of the database.
"""

from __future__ import annotations

import os

from ._config import (
    API_KEY_HEADER,
    KEYS_ENV,
    KeyRing,
    ServiceConfigError,
    ServiceSettings,
    require_server_extra,
)

__all__ = [
    "API_KEY_HEADER",
    "KEYS_ENV",
    "KeyRing",
    "ServiceConfigError",
    "ServiceSettings",
    "create_app",
    "is_loopback_host",
    "serve",
]



def is_loopback_host(host: str) -> bool:
    """Whether every address ``host`` resolves to is a loopback address (127.0.0.0/8, ::1).

    The name is resolved and each address checked, so ``localhost.example.com``
    or ``127.0.0.1.example.com`` do not pass; a name that does not resolve does
    not pass either.

    Examples
    --------
    >>> is_loopback_host("127.0.0.1"), is_loopback_host("::1"), is_loopback_host("0.0.0.0")
    (True, True, False)
    """
    import ipaddress
    import socket

    text = str(host).strip().strip("[]")
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(text, None)
    except (OSError, UnicodeError):
        return False
    addresses = {info[4][0].split("%", 1)[0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def create_app(engine=None, *, keys: KeyRing | list[str] | None = None, insecure_no_auth: bool = False,
               settings: ServiceSettings | None = None, read_only: bool = False, alongside=None):
    """Build the FastAPI application around one engine.

    Parameters
    ----------
    engine : Engine, str or path, optional
        An open engine (the caller closes it), or a database path opened
        here and closed at shutdown (default: ``$GEOTARGET_DB`` or
        ``./geotarget.duckdb``).
    keys : KeyRing or list of str, optional
        API keys; by default read from ``$GEOTARGET_API_KEYS``.
    insecure_no_auth : bool, default False
        Serve without any key check (local development only).
    settings : ServiceSettings, optional
        Limits; the defaults suit a public-facing deployment.
    read_only : bool, default False
        Open a database path read-only (campaign writes then get 409).
        A database path is opened with ``geotarget.open(path, shared=True)``:
        the server holds the file only while it writes, so the ``geotarget``
        command reads and writes it while the server runs, and the server
        answers from the new data within about a second.
    alongside : callable, optional
        Called with the engine when the app starts; returns a context
        manager held until the app shuts down (``geotarget serve`` answers
        the ``geotarget`` command's audiences with it).

    Returns
    -------
    fastapi.FastAPI

    Raises
    ------
    MissingDependencyError
        FastAPI is not installed.
    ServiceConfigError
        No API key is configured and ``insecure_no_auth`` is False.
    """
    require_server_extra()
    ring = _key_ring(keys, insecure_no_auth)
    from geotarget.connect import open as open_engine

    from ._app import build_app

    owns = engine is None or isinstance(engine, (str, os.PathLike))
    # a path: hold the file only while writing, so the geotarget command can read and write it meanwhile
    eng = open_engine(engine, read_only=read_only, shared=True) if owns else engine
    return build_app(eng, keys=ring, settings=settings or ServiceSettings(), owns_engine=owns, alongside=alongside)


def _key_ring(keys, insecure_no_auth: bool) -> KeyRing | None:
    if insecure_no_auth:
        return None
    ring = keys if isinstance(keys, KeyRing) else KeyRing.from_sources() if keys is None else KeyRing(keys)
    if not len(ring):
        raise ServiceConfigError(
            f"no API key configured; set {KEYS_ENV}=KEY1,KEY2 (16+ characters each) or pass --keys-file FILE "
            "(use --insecure-no-auth only for local development)")
    return ring


def serve(db=None, *, host: str = "127.0.0.1", port: int = 8000, keys_file: str | os.PathLike | None = None,
          insecure_no_auth: bool = False, read_only: bool = False, settings: ServiceSettings | None = None,
          log_level: str = "info", access_log: bool = True, alongside=None) -> None:
    """Run the service with uvicorn until interrupted (one process, one engine, a thread pool).

    Keys come from ``$GEOTARGET_API_KEYS`` and ``keys_file``. Without a key
    the server refuses to start unless ``insecure_no_auth``, which is itself
    refused on an address other than loopback. ``alongside`` is as for
    :func:`create_app`.
    """
    require_server_extra()
    if insecure_no_auth and not is_loopback_host(host):
        raise ServiceConfigError(
            f"--insecure-no-auth serves only on a loopback address (127.0.0.1 or ::1); {host!r} is not one "
            "(or does not resolve to one only); drop --insecure-no-auth and set API keys to serve elsewhere")
    ring = None if insecure_no_auth else _key_ring(KeyRing.from_sources(keys_file=keys_file), False)
    import uvicorn

    app = create_app(db, keys=ring, insecure_no_auth=insecure_no_auth, settings=settings, read_only=read_only,
                     alongside=alongside)
    uvicorn.run(app, host=host, port=int(port), log_level=log_level, server_header=False, access_log=access_log)
