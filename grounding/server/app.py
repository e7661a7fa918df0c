"""The OpenAI-compatible HTTP API: ``create_app`` builds it, ``serve`` runs it.

Endpoints::

    POST   /v1/chat/completions   everything grounding.acompletion takes (stream or not)
    GET    /v1/models             auto, router/<name>, the catalog's pool, local
    GET    /v1/models/{id}        one of them
    GET    /v1/routers            the routers (stored over HTTP, and the config's, read-only)
    POST   /v1/routers            create (409 if the name exists)          [write key]
    GET    /v1/routers/{name}
    PUT    /v1/routers/{name}     create or replace                         [write key]
    DELETE /v1/routers/{name}                                               [write key]
    GET    /health                no key needed
    GET    /openapi.json          this API's OpenAPI 3.1 description (no key needed)

Every failure is an OpenAI error body, ``{"error": {"message", "type",
"param", "code"}}``, with its status; nothing answers a bare 500 with a
traceback (the traceback goes to the server's log, secrets scrubbed).
"""
from __future__ import annotations

import errno
import json
import logging
import os
import socket
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from .. import __version__
from ..config import Config, get_config, set_config
from ..errors import AuthenticationError, GroundingError, InvalidRequestError, NotFoundError
from ..request import decode_body
from ..redact import get_logger, install_filter, redact, register_secret, scrub
from .auth import ApiKey, ClientAuthenticationError, KeyRing, PermissionDeniedError, check_open_request
from .limits import (RETRY_AFTER_S, ConcurrencyLimiter, ConcurrencyLimitError, RequestTooLargeError, Slot,
                     declared_length, limit_receive, open_limiter)
from .sse import ChunkStream, ClientDisconnected, encode, run_until_disconnect

__all__ = ["create_app", "app_from_environment", "serve", "check_workers", "ServerState", "ConflictError"]

log = get_logger("grounding.server")
access_log = get_logger("grounding.server.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Paths answered without a key.
PUBLIC_PATHS = frozenset({"/health", "/openapi.json"})
#: Request fields the server refuses: they would let a client point the
#: server's provider keys at a host of its choosing (or reach internal hosts).
#: Configure providers in the config file instead.
SERVER_ONLY_FIELDS = ("api_base", "api_key", "extra_headers")
#: Fields a router listing adds, stripped from a router sent back.
_LISTING_FIELDS = ("object", "source")


class ConflictError(GroundingError):
    """The resource exists already (a router of that name), or may not be changed over HTTP."""

    status_code = 409
    type = "invalid_request_error"


@dataclass
class ServerState:
    """What the app's handlers share."""

    config: Config
    keys: KeyRing
    limiter: ConcurrencyLimiter
    store: Any
    #: Routers of the config file (inline and router_files): read-only over HTTP.
    file_routers: dict[str, dict[str, Any]] = field(default_factory=dict)
    started: int = field(default_factory=lambda: int(time.time()))


# --------------------------------------------------------------------------- errors


def render_error(state: ServerState, exc: BaseException, *, method: str = "", path: str = ""
                 ) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
    """``(status, OpenAI error body, extra headers)`` for any exception; logs what is unexpected."""
    headers: list[tuple[bytes, bytes]] = []
    if isinstance(exc, GroundingError):
        status, body = exc.status_code, exc.to_dict()
        if isinstance(exc, AuthenticationError) and not isinstance(exc, ClientAuthenticationError):
            # An upstream rejected the server's provider key: the client's key is fine.
            status = 502
            body["error"]["type"] = "upstream_error"
            body["error"]["code"] = "upstream_authentication_error"
        if isinstance(exc, ConcurrencyLimitError):
            headers.append((b"retry-after", str(RETRY_AFTER_S).encode()))
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="grounding"'))
        return status, scrub(body), headers
    if isinstance(exc, HTTPException):
        if exc.status_code == 404:
            message, code = f"Invalid URL ({method} {path})", "unknown_url"
        elif exc.status_code == 405:
            message, code = f"Method {method} is not allowed on {path}", "method_not_allowed"
        else:
            message, code = str(exc.detail), None
        body = {"error": {"message": redact(message), "type": "invalid_request_error",
                          "param": None, "code": code}}
        headers.extend((k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items())
        return exc.status_code, body, headers
    text = redact("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    log.error("internal error on %s %s:\n%s", method, path, text.rstrip())
    return 500, {"error": {"message": "internal error", "type": "api_error", "param": None, "code": None}}, headers


def _json(status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None) -> Response:
    response = Response(encode(body), status_code=status, media_type="application/json")
    for name, value in headers or []:
        response.headers.append(name.decode(), value.decode())
    return response


# --------------------------------------------------------------------------- the gate


class Gate:
    """Pure ASGI middleware: request id, auth, body limit, concurrency, access log, last-resort errors.

    (Not Starlette's ``BaseHTTPMiddleware``, which would break streaming and
    disconnect detection.)
    """

    def __init__(self, app: Callable[..., Awaitable[None]], state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.state
        t0 = time.perf_counter()
        request_id = "req_" + uuid.uuid4().hex[:24]
        info: dict[str, Any] = {"key": None, "status": None, "outcome": None}
        scope["grounding"] = info
        method, path = scope.get("method", ""), scope.get("path", "")
        headers = {k.lower(): v for k, v in scope.get("headers") or []}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                info["status"] = message["status"]
                message = dict(message)
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        async def fail(exc: BaseException) -> None:
            status, body, extra = render_error(state, exc, method=method, path=path)
            if info["status"] is not None:  # the response had started: nothing more can be said
                log.warning("request %s failed after its response started: %s", request_id, type(exc).__name__)
                return
            payload = encode(body)
            await send_wrapper({"type": "http.response.start", "status": status,
                                "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(payload)).encode()), *extra]})
            await send_wrapper({"type": "http.response.body", "body": payload, "more_body": False})

        slot: Slot | None = None
        try:
            if path in PUBLIC_PATHS:
                await self.app(scope, receive, send_wrapper)
                return
            who = self._authenticate(scope, headers)
            info["key"] = who
            limit = state.config.server.max_body_bytes
            length = declared_length(scope.get("headers") or [])
            if length is not None and length > limit:
                raise RequestTooLargeError(limit)
            slot = await state.limiter.enter(who.name, state.limiter.limit_for(who.max_concurrent))
            await self.app(scope, limit_receive(receive, limit), send_wrapper)
        except GroundingError as exc:
            await fail(exc)
        except (ClientDisconnected, ClientDisconnect):  # a normal event: the access line says so
            info["outcome"] = "client_disconnected"
        except Exception as exc:  # noqa: BLE001 (a bug: answer 500, log the traceback)
            await fail(exc)
        finally:
            if slot is not None:
                await state.limiter.leave(slot)
            self._log(method, path, info, t0, request_id)

    def _authenticate(self, scope: Scope, headers: dict[bytes, bytes]) -> ApiKey:
        keys = self.state.keys
        if keys.open:
            client = scope.get("client")
            check_open_request(client[0] if client else None,
                               _text(headers.get(b"host")), _text(headers.get(b"origin")))
        return keys.authenticate(_text(headers.get(b"authorization")))

    @staticmethod
    def _log(method: str, path: str, info: dict[str, Any], t0: float, request_id: str) -> None:
        who: ApiKey | None = info["key"]
        status = info["status"]
        if status is None:
            status = 499 if info.get("outcome") == "client_disconnected" else 0
        extra = f" {info['outcome']}" if info.get("outcome") and info["outcome"] != "done" else ""
        access_log.info("%s %s %s %.1fms key=%s %s%s", method, path, status, (time.perf_counter() - t0) * 1000,
                        who.name if who else "-", request_id, extra)


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


# --------------------------------------------------------------------------- helpers


def _state(request: Request) -> ServerState:
    return request.app.state.server


def _who(request: Request) -> ApiKey:
    info = request.scope.get("grounding") or {}
    who = info.get("key")
    if who is None:  # pragma: no cover (the gate sets it on every non-public path)
        raise ClientAuthenticationError("authentication required", code="missing_api_key")
    return who


def _require_write(request: Request) -> None:
    if not _who(request).write:
        raise PermissionDeniedError("this API key may not manage routers: it needs write permission",
                                    code="permission_denied")


async def _read_json(request: Request) -> dict[str, Any]:
    """The body as a checked JSON object (:func:`grounding.request.decode_body`: the one decoder).

    A client that hangs up mid-upload (or whose chunked body the HTTP server
    could not parse, which ends the same way) raises :class:`ClientDisconnected`."""
    try:
        raw = await request.body()
    except ClientDisconnect:
        raise ClientDisconnected() from None
    return decode_body(raw)


# --------------------------------------------------------------------------- chat completions


async def chat_completions(request: Request) -> Any:
    state = _state(request)
    body = await _read_json(request)
    for name in SERVER_ONLY_FIELDS:
        if body.get(name) is not None:
            raise InvalidRequestError(f"{name} is not accepted by this server: its providers are set in "
                                      f"its config file", param=name, code="unsupported_parameter")
    if "progress" in body:  # a Python-only argument of acompletion
        raise InvalidRequestError("Unknown parameter: 'progress' (a Python argument: in a stream, ask for progress "
                                  "events with stream_options={\"include_progress\": true}).", param="progress")
    from ..api import acompletion

    info = request.scope.get("grounding") or {}
    latest: list[str] = []  # the request's latest progress line, for the stream's comments

    def on_progress(event: Any) -> None:
        latest[:] = [str(event)]

    try:
        result = await run_until_disconnect(acompletion(progress=on_progress, **body), request.receive)
    except ClientDisconnected:
        info["outcome"] = "client_disconnected"
        return _Nothing()
    if hasattr(result, "__aiter__"):
        server = state.config.server
        return ChunkStream(result, info=info, status=lambda: redact(latest[0]) if latest else None,
                           first_byte_s=server.stream_first_byte_s, heartbeat_s=server.stream_heartbeat_s,
                           render_error=lambda exc: render_error(state, exc, method=request.method,
                                                                 path=request.url.path))
    return _json(200, result.to_dict())


class _Nothing:
    """No response: the client is gone."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return None


# --------------------------------------------------------------------------- models


def _model_list(state: ServerState) -> list[dict[str, Any]]:
    created = state.started
    out: dict[str, dict[str, Any]] = {}

    def add(model_id: str, owned_by: str) -> None:
        out.setdefault(model_id, {"id": model_id, "object": "model", "created": created, "owned_by": owned_by})

    add("auto", "grounding")
    from ..routing.routers import get_routers

    prefix = (state.config.router_prefix or "router").rstrip("/")
    try:
        for name in get_routers().names():
            add(f"{prefix}/{name}", "router")
    except GroundingError as exc:
        log.warning("routers unavailable for /v1/models: %s", exc.message)
    from ..routing.catalog import get_catalog

    for info in get_catalog().pool():
        add(info.id, info.provider)
    from ..local_model import is_installed

    if is_installed():  # its runtime and weights: what model="local" (and an offline "auto") will use
        add("local", "local")
    return list(out.values())


async def list_models(request: Request) -> Response:
    data = await run_in_threadpool(_model_list, _state(request))
    return _json(200, {"object": "list", "data": data})


async def get_model(request: Request) -> Response:
    model_id = request.path_params["model"]
    for item in await run_in_threadpool(_model_list, _state(request)):
        if item["id"] == model_id:
            return _json(200, item)
    raise NotFoundError(f"The model '{model_id}' does not exist", param="model", code="model_not_found")


# --------------------------------------------------------------------------- routers


def _listed(router: dict[str, Any], source: str) -> dict[str, Any]:
    return {"object": "router", "source": source, **{k: v for k, v in router.items() if k not in _LISTING_FIELDS}}


def _router_body(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in _LISTING_FIELDS}


def _not_in_file(state: ServerState, name: str) -> None:
    if name in state.file_routers:
        raise ConflictError(f"router {name!r} comes from the config file and cannot be changed over HTTP",
                            param="name", code="router_conflict")


def _unknown_router(name: str) -> NotFoundError:
    return NotFoundError(f"unknown router {name!r}", param="name", code="router_not_found")


async def list_routers(request: Request) -> Response:
    state = _state(request)
    stored = await run_in_threadpool(state.store.list)
    items = {r["name"]: _listed(r, "file") for r in state.file_routers.values()}
    for router in stored:
        items.setdefault(router["name"], _listed(router, "store"))
    return _json(200, {"object": "list", "data": [items[n] for n in sorted(items)]})


async def get_router(request: Request) -> Response:
    state = _state(request)
    name = request.path_params["name"]
    if name in state.file_routers:
        return _json(200, _listed(state.file_routers[name], "file"))
    router = await run_in_threadpool(state.store.get, name)
    if router is None:
        raise _unknown_router(name)
    return _json(200, _listed(router, "store"))


async def create_router(request: Request) -> Response:
    _require_write(request)
    state = _state(request)
    body = _router_body(await _read_json(request))
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError("missing required parameter 'name'", param="name", code="invalid_router")
    _not_in_file(state, name)
    if await run_in_threadpool(state.store.get, name) is not None:
        raise ConflictError(f"router {name!r} already exists: PUT /v1/routers/{name} replaces it",
                            param="name", code="router_exists")
    stored = await run_in_threadpool(state.store.put, body)
    return _json(201, _listed(stored, "store"))


async def put_router(request: Request) -> Response:
    _require_write(request)
    state = _state(request)
    name = request.path_params["name"]
    body = _router_body(await _read_json(request))
    if body.setdefault("name", name) != name:
        raise InvalidRequestError(f"the body names router {body['name']!r} but the URL names {name!r}",
                                  param="name", code="invalid_router")
    _not_in_file(state, name)
    existed = await run_in_threadpool(state.store.get, name) is not None
    stored = await run_in_threadpool(state.store.put, body)
    return _json(200 if existed else 201, _listed(stored, "store"))


async def delete_router(request: Request) -> Response:
    _require_write(request)
    state = _state(request)
    name = request.path_params["name"]
    _not_in_file(state, name)
    if not await run_in_threadpool(state.store.delete, name):
        raise _unknown_router(name)
    return _json(200, {"id": name, "object": "router.deleted", "deleted": True})


# --------------------------------------------------------------------------- health


async def health(request: Request) -> Response:
    """Always 200 while the process serves requests; the router store's state is in the body
    (a shared store that is down must not take every replica out of a load balancer at once:
    requests keep the routers last read from it)."""
    state = _state(request)
    try:
        store = await run_in_threadpool(state.store.status)
    except Exception as exc:  # noqa: BLE001 (report, never raise)
        store = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    from .store import install_status

    from providers.extract_pool import get_pool

    from ..cache import get_cache

    ok = not (isinstance(store, dict) and store.get("ok") is False)
    cache, limits = get_cache().status(), state.limiter.status()
    shared_down = any(part.get("degraded") for part in (cache, limits))
    body = {"status": "ok" if ok and not shared_down else "degraded", "version": __version__, "store": store,
            "routers": install_status(), "auth": "open (loopback only)" if state.keys.open else "api keys",
            "cache": cache, "limits": limits, "extraction": get_pool().status()}
    return _json(200, scrub(body))


async def openapi(request: Request) -> Response:
    """The OpenAPI description, generated from the request and response models (once per app)."""
    cached = getattr(request.app.state, "openapi", None)
    if cached is None:
        from .openapi import openapi_document

        cached = request.app.state.openapi = encode(openapi_document(SERVER_ONLY_FIELDS))
    return Response(cached, media_type="application/json")


# --------------------------------------------------------------------------- the app


def create_app(config: Config | dict[str, Any] | str | None = None, *, store: Any = None) -> Starlette:
    """The ASGI app. ``config`` (a :class:`Config`, a dict or a path) becomes the
    process's config (:func:`grounding.config.set_config`); None keeps the current one.
    ``store`` defaults to :func:`grounding.server.store.open_store` of the config.

    Raises :class:`InvalidRequestError` for a bad config (an unset key
    variable, an invalid router file), before anything listens.
    """
    cfg = set_config(config) if config is not None else get_config()
    keys = KeyRing.from_config(cfg)
    from ..routing.routers import load_routers

    file_routers = {r.name: r.to_dict() for r in load_routers(cfg)}
    from . import store as store_module

    if store is None:
        store = store_module.open_store(cfg)
    store_module.install(store)
    register_secret(*keys.secrets)  # client keys never appear in a response or a log
    state = ServerState(config=cfg, keys=keys,
                        limiter=open_limiter(cfg.server.max_concurrent_per_key, cfg.effective_redis_url),
                        store=store, file_routers=file_routers)

    async def on_error(request: Request, exc: Exception) -> Response:
        status, body, headers = render_error(state, exc, method=request.method, path=request.url.path)
        return _json(status, body, headers)

    async def on_disconnect(request: Request, exc: Exception) -> Any:
        (request.scope.get("grounding") or {})["outcome"] = "client_disconnected"
        return _Nothing()

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", get_model, methods=["GET"]),
        Route("/v1/routers", list_routers, methods=["GET"]),
        Route("/v1/routers", create_router, methods=["POST"]),
        Route("/v1/routers/{name}", get_router, methods=["GET"]),
        Route("/v1/routers/{name}", put_router, methods=["PUT"]),
        Route("/v1/routers/{name}", delete_router, methods=["DELETE"]),
        Route("/health", health, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        import asyncio

        from ..llm import own_loop

        own_loop(asyncio.get_running_loop())
        from providers.extract_pool import get_pool, shutdown_pool

        get_pool().start()  # the extraction workers start now, not on the first request
        try:
            yield
        finally:
            state.limiter.close()
            from ..llm import drain_logging

            await drain_logging()
            close = getattr(store, "close", None)
            if close is not None:
                try:
                    await run_in_threadpool(close)
                except Exception:  # noqa: BLE001 (shutting down anyway)
                    log.warning("closing the router store failed", exc_info=False)
            await run_in_threadpool(shutdown_pool)

    app = Starlette(routes=routes, middleware=[Middleware(Gate, state=state)],
                    exception_handlers={GroundingError: on_error, HTTPException: on_error,
                                        ClientDisconnected: on_disconnect, ClientDisconnect: on_disconnect},
                    lifespan=lifespan)
    app.state.server = state
    return app


# --------------------------------------------------------------------------- serve


def configure_logging(level: int = logging.INFO) -> None:
    """One line per record on stderr for the ``grounding.server`` loggers (unless logging is set up);
    every handler of the root logger redacts secrets (:class:`grounding.redact.RedactingFilter`)."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_filter(*root.handlers)
    # Our own lines at `level`; libraries (litellm logs every call at INFO) stay at warnings.
    logging.getLogger("grounding").setLevel(level)


#: Set in the environment of ``grounding serve --workers N``'s processes: the config file they load.
WORKER_CONFIG_ENV = "GROUNDING_CONFIG"


def app_from_environment() -> Starlette:
    """The app factory each process of ``grounding serve --workers N`` calls (uvicorn's
    ``factory=True``): the config from ``$GROUNDING_CONFIG``, logging set up, litellm imported
    before the process takes requests."""
    configure_logging()
    app = create_app(None)
    from ..llm import litellm

    litellm()
    log.info("grounding %s worker %d ready", __version__, os.getpid())
    return app


def check_workers(workers: int, cfg: Config) -> None:
    """More than one process needs a shared store: :class:`InvalidRequestError` (one line) without Redis."""
    if workers < 1:
        raise InvalidRequestError(f"--workers must be at least 1 (got {workers})", param="workers")
    if workers > 1 and not cfg.effective_redis_url:
        raise InvalidRequestError(
            f"--workers {workers} needs a shared store: set redis_url in the config file (or "
            "GROUNDING_REDIS_URL) so that the processes share routers, statistics, limits and the cache",
            param="workers")


def _config_file_for_workers(cfg: Config, config: Config | dict[str, Any] | str | None) -> str | None:
    """A path the worker processes can load the config from (a temporary copy for a dict or Config)."""
    if isinstance(config, (str, os.PathLike)):
        return str(Path(config).expanduser().resolve())
    if config is None:
        source = os.environ.get(WORKER_CONFIG_ENV)
        if source or cfg == Config():
            return source or None
    import tempfile

    data = cfg.model_dump(mode="json", exclude_defaults=True)  # base_dir kept: relative paths still resolve
    handle = tempfile.NamedTemporaryFile("w", suffix=".json", prefix="grounding-config-", delete=False)
    with handle:
        json.dump(data, handle)
    return handle.name


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging config, with secrets redacted by every one of its handlers."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {"()": "grounding.redact.RedactingFilter"}
    for handler in config.get("handlers", {}).values():
        handler.setdefault("filters", []).append("redact")
    return config


def serve(host: str = "127.0.0.1", port: int = 8000, config: Config | dict[str, Any] | str | None = None,
          *, store: Any = None, workers: int | None = None, preload_local: bool = False) -> None:
    """Run the server with uvicorn until interrupted.

    ``workers`` (default: the config's ``server.workers``, else 1) processes
    share the port (uvicorn's supervisor restarts one that dies); more than one
    needs ``redis_url`` (:func:`check_workers`), through which they share
    routers, statistics, per-key limits and the cache. Each process has an
    extraction worker per CPU unless ``extraction.workers`` (or
    ``GROUNDING_EXTRACT_WORKERS``) says otherwise: uvicorn's supervisor does
    not balance connections between its processes (one may hold most of them
    while another idles), so each must be able to use every core; the kernel
    shares the cores between all the workers when every process is busy.

    Refuses (an :class:`InvalidRequestError`) a non-loopback ``host`` when no
    API key is configured. litellm is imported before the port opens, so the
    first request does not pay for it; with ``preload_local`` the embedded
    model is loaded then too (loading it holds the whole process for a few
    seconds, which would otherwise stall every stream in flight, their
    progress comments included, on the first offline request).
    """
    import uvicorn

    from .auth import check_bind

    cfg = set_config(config) if config is not None else get_config()
    check_bind(host, KeyRing.from_config(cfg))
    from ..deadlines import deadlines

    deadlines()  # a bad GROUNDING_*_TIMEOUT stops the server here, not every request later
    n = workers if workers is not None else (cfg.server.workers or 1)
    check_workers(n, cfg)
    configure_logging()
    sock = bind(host, port)  # a busy port is one clear error, before anything says "listening"
    if n > 1:
        sock.close()  # free again for uvicorn's supervisor, which binds it for its workers
        if preload_local:
            log.warning("--preload-local applies to one server process; with %d workers each loads the embedded "
                        "model on its first offline request", n)
        if store is not None:
            raise InvalidRequestError("a store object cannot be shared with worker processes; configure "
                                      "server.router_store or redis_url instead", param="store")
        from ..routing.routers import load_routers

        load_routers(cfg)  # a bad router file fails here, once, before any process starts
        path = _config_file_for_workers(cfg, config)
        if path:
            os.environ[WORKER_CONFIG_ENV] = path
        log.info("grounding %s listening on http://%s:%d with %d worker processes (%s)", __version__, host, port, n,
                 "open, loopback only" if KeyRing.from_config(cfg).open else "API keys required")
        try:
            uvicorn.run("grounding.server.app:app_from_environment", factory=True, workers=n, host=host, port=port,
                        access_log=False, log_level="info", timeout_graceful_shutdown=10,
                        log_config=uvicorn_log_config())
        finally:
            if path and path != str(config) and Path(path).name.startswith("grounding-config-"):
                Path(path).unlink(missing_ok=True)
        return
    try:
        app = create_app(None, store=store)
        from ..llm import litellm

        litellm()
        if preload_local:
            from ..local_model import get_local_server

            get_local_server(progress=lambda message: log.info("embedded model: %s", message))
        log.info("grounding %s listening on http://%s:%d (%s)", __version__, _host_in_url(host), port,
                 "open, loopback only" if app.state.server.keys.open else "API keys required")
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, access_log=False, log_level="info",
                                               timeout_graceful_shutdown=10, log_config=uvicorn_log_config()))
        server.run(sockets=[sock])
    finally:
        sock.close()


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, ready for uvicorn; a :class:`GroundingError` saying what
    to do when the port is taken or the address is not this machine's."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise GroundingError(f"cannot listen on {host!r}: {exc.strerror or exc}", code="bad_host") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        where = f"{_host_in_url(host)}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise GroundingError(f"port {port} is already in use on {host} (another program holds {where}); "
                                 "stop it or choose another port with --port", code="address_in_use") from None
        if exc.errno == errno.EACCES:
            raise GroundingError(f"no permission to listen on {where} (ports below 1024 need privileges); "
                                 "choose another port with --port", code="address_not_allowed") from None
        raise GroundingError(f"cannot listen on {where}: {exc.strerror or exc}", code="bind_failed") from None
    return sock


def _host_in_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host
