"""asyncpg pools. JSON and JSONB columns come back as Python objects."""

from __future__ import annotations

import asyncpg
import orjson


def _dumps(value) -> str:
    return orjson.dumps(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=_dumps, decoder=orjson.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=_dumps, decoder=orjson.loads, schema="pg_catalog")


class PooledConnection(asyncpg.Connection):
    """A pooled connection released without asyncpg's reset query.

    By default every release runs `RESET ALL; UNLISTEN *; pg_advisory_unlock_all(); CLOSE ALL`
    (one more round trip per acquire: a sixth of a chat message's database time). Our code keeps
    no session state on pooled connections: settings are transaction-local (`set_config(...,
    true)`), session advisory locks are taken only by `shared.migrate` on its own connection, and
    the outbox relay removes its listener before releasing. asyncpg still rolls back an open
    transaction and drops listener callbacks on release; tests/shared/test_db.py checks both."""

    def get_reset_query(self) -> str:
        return ""


class DatabaseUnavailable(ConnectionError):
    """The database could not be reached (refused, unresolvable, timed out): raised by the pools'
    connect step in place of the socket's OSError, so that only this one, and not an OSError from
    anything else a request does (a file, another service), reads as the database being down."""


async def _connect(*args, **kwargs) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(*args, **kwargs)
    except OSError as exc:  # ConnectionRefusedError, socket.gaierror, TimeoutError, ...
        raise DatabaseUnavailable(f"cannot connect to the database: {exc!r}") from exc


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10, **kwargs) -> asyncpg.Pool:
    kwargs.setdefault("connection_class", PooledConnection)
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        connect=_connect,
        init=_init_connection,
        command_timeout=30,
        # Recycle idle connections so a restarted or failed-over server is picked up.
        max_inactive_connection_lifetime=300,
        **kwargs,
    )


# Errors that mean "the database is unreachable right now", answered 503 instead of 500. Not any
# OSError: only the pools' connect step turns one into DatabaseUnavailable (a lost connection
# mid-query is asyncpg's ConnectionDoesNotExistError).
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InterfaceError,
    DatabaseUnavailable,
)


def is_unavailable(exc: BaseException) -> bool:
    """The database went away (connection refused, terminated, failing over), as opposed to a
    query error. Includes asyncpg's "another operation (2) is in progress", which is what a pooled
    connection whose backend was terminated while idle answers to its next query."""
    if isinstance(exc, UNAVAILABLE_ERRORS):
        return True
    return isinstance(exc, asyncpg.exceptions.InternalClientError) and "another operation (2)" in str(exc)


async def retry_unavailable(operation, *, attempts: int = 7, first_delay: float = 0.05):
    """Run `operation()` (an idempotent database call), retrying while the database is briefly
    unavailable: 7 tries over ~3 s by default. Other errors, and the last failure, propagate."""
    import asyncio

    delay = first_delay
    for attempt in range(attempts):
        try:
            return await operation()
        except Exception as exc:
            if attempt == attempts - 1 or not is_unavailable(exc):
                raise
            await asyncio.sleep(delay)
            delay *= 2
