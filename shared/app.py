"""The app factory every service uses: one shape for lifespan, health, errors, logs and limits."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Literal

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.routing import BaseRoute

from shared import db as dbmod
from shared.auth import TokenValidator
from shared.bus import Consumer, EventHandlers, EventPublisher, OutboxRelay
from shared.erasure import Erase, SecondPasses
from shared.errors import VALIDATION_ERROR, error_response, install_error_handlers
from shared.known_users import KnownUsers
from shared.logs import AccessLog, configure_logging, request_id_var
from shared.migrate import migrate
from shared.openapi import install_openapi
from shared.ratelimit import DefaultRateLimit
from shared.redis import Keys, create_redis
from shared.settings import ServiceSettings
from shared.tombstones import Tombstones
from shared.tombstones import redis_key as tombstones_key

log = logging.getLogger("shared.app")

Hook = Callable[[FastAPI], Awaitable[None]]
# A readiness check of a service's own dependency (blob storage, ...): raises when not ready.
ReadyCheck = Callable[[FastAPI], Awaitable[object]]


_BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})


class _BodyTooLarge(BaseException):
    """BaseException so that body parsers' `except Exception` cannot turn it into a 400."""


class RequestContextMiddleware:
    """Request id (X-Request-ID in and out), one structured access log line, body size limit,
    and the service-wide rate limit (shared.ratelimit.DefaultRateLimit).

    Pure ASGI rather than BaseHTTPMiddleware: it adds no task per request and never buffers
    streaming responses.
    """

    def __init__(self, app, *, max_body_bytes: int, service: str, rate_limit: DefaultRateLimit):
        self.app = app
        self.max_body = max_body_bytes
        self.access = AccessLog(service)
        self.rate_limit = rate_limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = None
        content_length = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"transfer-encoding":
                chunked = True
            elif name == b"x-request-id":
                request_id = value.decode("latin-1")[:64]
            elif name == b"content-length":
                try:
                    content_length = int(value)
                except ValueError:
                    content_length = -1
        request_id = request_id or os.urandom(16).hex()
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_wrapper(message):
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                # Server-Timing: the time this process took until the response started, so a
                # client (or a benchmark) can tell the service's time from the network's.
                app_ms = (time.perf_counter() - started) * 1000
                message["headers"] = list(message.get("headers", [])) + [
                    (b"x-request-id", request_id.encode()),
                    (b"server-timing", b"app;dur=%.2f" % app_ms),
                ]
            await send(message)

        received = 0

        async def receive_wrapper():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge()
            return message

        # Bodiless methods skip the counting wrapper (one less hop per message on the hot path).
        counted_receive = (
            receive if scope["method"] in _BODILESS and content_length is None and not chunked else receive_wrapper
        )
        try:
            if content_length is not None and content_length > self.max_body:
                raise _BodyTooLarge()
            limited = await self.rate_limit.check(scope)
            if limited is not None:
                response = error_response(
                    limited.status, limited.code, limited.message, headers=limited.headers, **limited.extra
                )
                await response(scope, receive, send_wrapper)
                return
            await self.app(scope, counted_receive, send_wrapper)
        except _BodyTooLarge:
            if not response_started:
                response = error_response(
                    413,
                    "PAYLOAD_TOO_LARGE",
                    f"The request body is larger than {self.max_body} bytes.",
                    max_bytes=self.max_body,
                )
                await response(scope, receive, send_wrapper)
        finally:
            if self.access.enabled and not scope["path"].startswith("/health"):
                self.access.write(
                    request_id, scope["method"], scope["path"], status, (time.perf_counter() - started) * 1000
                )
            request_id_var.reset(token)


class BrowserCORSMiddleware:
    """Starlette's CORS, only for requests that carry an Origin header (browsers send one on
    every cross-origin request). Mobile apps, webhooks and services skip the per-request header
    work entirely."""

    def __init__(self, app, **cors_options):
        self.app = app
        self.cors = CORSMiddleware(app, **cors_options)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            for name, _ in scope["headers"]:
                if name == b"origin":
                    return await self.cors(scope, receive, send)
        return await self.app(scope, receive, send)


class Liveness(BaseModel):
    status: Literal["ok"]
    service: str


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    service: str
    checks: dict[str, str]


async def _check(coro, timeout: float = 2.0) -> str:
    try:
        await asyncio.wait_for(coro, timeout)
        return "ok"
    except Exception as exc:  # a readiness probe reports, it does not raise
        return f"error: {type(exc).__name__}"


def create_app(
    *,
    service: str,
    settings: ServiceSettings,
    routers: Sequence[APIRouter] = (),
    first_routes: Sequence[BaseRoute] = (),
    legacy_prefixes: Sequence[str] = (),
    own_database_url: str | None = None,
    use_database: bool = True,
    consumer: EventHandlers | None = None,
    erase_user: Erase | None = None,
    outbox: bool = True,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    rate_limit_exempt: Sequence[str] = (),
    ready_checks: Mapping[str, ReadyCheck] = {},
    title: str | None = None,
    version: str = "1.0.0",
) -> FastAPI:
    """Build a service app.

    - `own_database_url`: the service's own database; None means its own tables live in the
      shared core database (Auth, Payment). `app.state.db` is the own pool, `app.state.core_db`
      the core pool (the same pool when they coincide).
    - `consumer`: event handlers (`async def on_x(conn, event, state)`, state = app.state); binds
      the service's durable queue `<service>_service.events`.
    - `erase_user`: the service's erasure of one user (`async def erase(conn, user_id, state)`), which
      its `user.deleted` handler runs and follows with `shared.erasure.schedule`: the app then runs
      the second passes (shared/erasure.py).
    - `on_startup` / `on_shutdown`: the service's own `startup(app)` / `shutdown(app)` hooks.
    - `outbox`: the service emits events through an outbox in its own database; its relay runs
      in this process unless OUTBOX_RELAY=external (then `python -m shared.relay <service>`).
    - `first_routes`: routes matched before health and the routers, as given (no legacy prefixing): a hot
      path served by plain Starlette routes, still wrapped by the shared middleware.
    - `rate_limit_exempt`: path prefixes outside the default per-client rate limit.
    - `ready_checks`: the service's own dependencies for `/health/ready`, `{name: check(app)}`
      next to the database, Redis and RabbitMQ; a check that raises (or takes over 2 s) is not ready.
    """
    configure_logging(f"{service}_service", settings.log_level, settings.log_json)
    if settings.sentry_dsn:
        import sentry_sdk

        sentry_sdk.init(
            dsn=settings.sentry_dsn, environment=settings.environment, traces_sample_rate=0.0, send_default_pii=False
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state = app.state
        state.settings = settings
        state.service = service
        state.keys = Keys(settings.redis_prefix)
        state.token_validator = TokenValidator(
            settings.supabase_jwt_secret,
            previous_secrets=[settings.supabase_jwt_secret_previous] if settings.supabase_jwt_secret_previous else None,
            supabase_url=settings.supabase_url,
            asymmetric_algorithms=settings.jwt_asymmetric_algorithms,
        )
        state.redis = create_redis(settings.redis_url)
        state.db = state.core_db = None
        state.publisher = EventPublisher(
            settings.rabbitmq_url, settings.events_exchange, name=f"{service}_service:publisher"
        )
        state.relay = state.consumer = None
        if use_database:
            own_dsn = own_database_url or settings.database_url
            if settings.migrate_on_start:
                applied = await migrate(own_dsn, service)
                if applied:
                    log.info("migrations applied", extra={"applied": applied})
            state.db = await dbmod.create_pool(own_dsn, min_size=settings.db_pool_min, max_size=settings.db_pool_max)
            state.core_db = (
                state.db
                if own_dsn == settings.database_url
                else await dbmod.create_pool(
                    settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
                )
            )
            if outbox and settings.outbox_relay == "inprocess":
                state.relay = OutboxRelay.from_settings(state.db, state.publisher, settings)
                state.relay.start()
            if consumer is not None:
                state.consumer = Consumer(
                    url=settings.rabbitmq_url,
                    exchange=settings.events_exchange,
                    queue=f"{service}_service.events",
                    pool=state.db,
                    handlers=consumer,
                    state=state,
                    prefetch=settings.consumer_prefetch,
                    max_attempts=settings.consumer_max_attempts,
                    retry_delays_ms=settings.consumer_retry_delays_ms,
                )
        # Tokens of users Auth never had are refused (shared/known_users.py); Auth reads its own table.
        state.known_users = (
            KnownUsers(
                auth_url=settings.auth_service_url,
                secret=settings.supabase_jwt_secret,
                service=service,
                max_known=settings.known_users_max,
                unknown_ttl_seconds=settings.known_users_unknown_ttl_seconds,
            )
            if settings.known_users_check and service != "auth"
            else None
        )
        # Deleted users' tokens refused from start-up on (Redis and RabbitMQ down: serves, and
        # keeps trying; shared/tombstones.py).
        state.tombstones = Tombstones(
            redis=state.redis,
            key=tombstones_key(state.keys),
            amqp_url=settings.rabbitmq_url,
            exchange=settings.events_exchange,
            service=service,
            on_user_created=state.known_users.add if state.known_users is not None else None,
        )
        await state.tombstones.start()
        for hook in on_startup:
            await hook(app)
        if state.consumer is not None:
            # After the service's start-up hooks: handlers get app.state with everything in it.
            state.consumer.start()
        state.second_passes = None
        if erase_user is not None and state.db is not None:
            state.second_passes = SecondPasses(
                state.db, erase_user, state, interval_seconds=settings.erasure_sweep_seconds
            )
            state.second_passes.start()
        # Everything loaded so far (frameworks, SDKs, a service's in-memory data such as the
        # search index) lives as long as the process. Frozen out of the collector, a full
        # collection no longer walks it: walking it stalled every request in flight (~50 ms on
        # the benchmark VM for Payment's 86k start-up objects). No gc.collect() first: it would
        # run whatever finalizers are pending, at an unknown cost.
        gc.freeze()
        log.info("service started", extra={"port": settings.port})
        try:
            yield
        finally:
            if state.consumer is not None:
                # Before the service's shutdown hooks: a handler in flight still has what it uses.
                await state.consumer.stop()
            if state.second_passes is not None:
                await state.second_passes.stop()
            for hook in on_shutdown:
                try:
                    await hook(app)
                except Exception:
                    log.exception("shutdown hook failed")
            await state.tombstones.stop()
            if state.known_users is not None:
                await state.known_users.close()
            if state.relay is not None:
                await state.relay.stop()
            await state.publisher.close()
            for pool in {id(p): p for p in (state.db, state.core_db) if p is not None}.values():
                await pool.close()
            await state.redis.aclose()

    app = FastAPI(
        title=title or f"SceneXtras {service} service",
        version=version,
        lifespan=lifespan,
    )
    install_error_handlers(app)

    from redis.exceptions import ConnectionError as RedisConnectionError

    @app.exception_handler(RedisConnectionError)
    async def _redis_down(request, exc):
        return error_response(
            503, "CACHE_UNAVAILABLE", "A dependency is unavailable; try again shortly.", headers={"Retry-After": "2"}
        )

    for error_type in dbmod.UNAVAILABLE_ERRORS:

        @app.exception_handler(error_type)
        async def _db_down(request, exc):
            log.warning("database unavailable", extra={"error": repr(exc)})
            return error_response(
                503,
                "DATABASE_UNAVAILABLE",
                "The database is unavailable; try again shortly.",
                headers={"Retry-After": "2"},
            )

    import asyncpg

    @app.exception_handler(asyncpg.exceptions.CharacterNotInRepertoireError)
    @app.exception_handler(asyncpg.exceptions.UntranslatableCharacterError)
    async def _text_not_storable(request, exc):
        # PostgreSQL's text cannot hold U+0000: a client string carrying one is the client's error,
        # and the statement that refused it rolled its transaction back, so nothing changed.
        return VALIDATION_ERROR.response("The request contains a character that cannot be stored (U+0000).")

    @app.exception_handler(asyncpg.exceptions.InternalClientError)
    async def _db_connection_broken(request, exc):
        # A backend terminated while its pooled connection sat idle (pg_terminate_backend, a
        # restart or failover): asyncpg has read the server's FATAL but not yet the close, and
        # refuses the next query with "another operation (2) is in progress" (2 is
        # PROTOCOL_ERROR_CONSUME). That is the database going away, not a bug: 503 like the rest.
        if dbmod.is_unavailable(exc):
            log.warning("database connection terminated", extra={"error": repr(exc)})
            return error_response(
                503,
                "DATABASE_UNAVAILABLE",
                "The database is unavailable; try again shortly.",
                headers={"Retry-After": "2"},
            )
        log.exception("unhandled error", extra={"path": request.url.path})
        return error_response(500, "INTERNAL_ERROR", "Something went wrong on our side.")

    # Outermost last: CORS (so 413s and 429s are readable by browsers) -> request id, access log,
    # body limit and the default rate limit in one layer -> the app.
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        service=f"{service}_service",
        rate_limit=DefaultRateLimit(tuple(rate_limit_exempt)),
    )
    app.add_middleware(
        BrowserCORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials="*" not in settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["X-Request-ID", "Retry-After", "Server-Timing"],
    )

    health = APIRouter(tags=["health"])

    # Documented, not validated per request: these answer load balancers and probes all day.
    @health.get("/health", responses={200: {"model": Liveness, "description": "Alive"}})
    async def liveness():
        return {"status": "ok", "service": service}

    @health.get(
        "/health/ready",
        responses={
            200: {"model": Readiness, "description": "Ready"},
            503: {"model": Readiness, "description": "Not ready"},
        },
    )
    async def readiness():
        state = app.state
        checks: dict[str, str] = {}
        if state.db is not None:
            checks["database"] = await _check(state.db.fetchval("SELECT 1"))
            if state.core_db is not state.db:
                checks["core_database"] = await _check(state.core_db.fetchval("SELECT 1"))
        checks["redis"] = await _check(state.redis.ping())
        checks["rabbitmq"] = await _check(state.publisher.connect(timeout=2.0))
        for name, ready_check in ready_checks.items():
            checks[name] = await _check(ready_check(app))
        ok = all(v == "ok" for v in checks.values())
        body = {"status": "ok" if ok else "unavailable", "service": service, "checks": checks}
        return JSONResponse(body, status_code=200 if ok else 503)

    app.router.routes.extend(first_routes)
    app.include_router(health)
    # Every current path before any legacy-prefixed copy: FastAPI tries routes in order, one by one
    # (a few µs of CPU each), so a current request no longer walks past each router's legacy copies.
    # No current path starts with a legacy prefix (/api/...), so no request matches differently.
    for router in routers:
        app.include_router(router)
    for prefix in legacy_prefixes:
        for router in routers:
            app.include_router(router, prefix=prefix, include_in_schema=False)
    install_openapi(app, database=use_database, rate_limit_exempt=rate_limit_exempt)
    return app


def lazy_app(build: Callable[[], FastAPI]):
    """For `main.py`: `__getattr__ = lazy_app(build_app)` makes `<service>.main:app` build the app
    on first access (what uvicorn does), so importing the module never needs the environment."""
    cache: dict[str, FastAPI] = {}

    def module_getattr(name: str):
        if name == "app":
            if "app" not in cache:
                cache["app"] = build()
            return cache["app"]
        raise AttributeError(name)

    return module_getattr


__all__ = ["create_app", "lazy_app"]
