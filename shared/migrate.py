"""Numbered .sql migrations per service, recorded in `schema_migrations`.

Safe to run twice (applied files are skipped) and from two processes at once (a session
advisory lock serialises runners on the same database). Each file runs in one transaction with
its record. `shared/migrations/` (outbox, processed events) is applied first to every service
database. Usage: `python -m shared.migrate <service>` (Dokku's release phase).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import logging
import os
import sys
from pathlib import Path

import asyncpg

from shared import fleet

log = logging.getLogger("shared.migrate")

ROOT = Path(__file__).resolve().parent.parent
SHARED_MIGRATIONS = Path(__file__).resolve().parent / "migrations"

# service -> the environment variable holding the database its migrations go to (None: no
# PostgreSQL, e.g. Content's embedded store). From the fleet manifest.
SERVICE_DATABASES: dict[str, str | None] = {s.name: s.database_var for s in fleet.SERVICES}
LOCK_KEY = 0x5CE7E1A5  # one advisory lock id for all SceneXtras migration runners


def migration_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    files = sorted(p for p in directory.glob("*.sql") if p.name[:3].isdigit())
    numbers = [p.name.split("_", 1)[0] for p in files]
    if len(numbers) != len(set(numbers)):
        raise SystemExit(f"{directory}: two migrations share a number")
    return files


async def apply(conn: asyncpg.Connection, component: str, directory: Path) -> list[str]:
    applied_now = []
    done = {
        r["version"]: r["checksum"]
        for r in await conn.fetch("SELECT version, checksum FROM schema_migrations WHERE component = $1", component)
    }
    for path in migration_files(directory):
        sql = path.read_text()
        checksum = hashlib.sha256(sql.encode()).hexdigest()
        version = path.name
        if version in done:
            if done[version] != checksum:
                log.warning("migration %s/%s changed after it was applied; not re-run", component, version)
            continue
        async with conn.transaction():
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO schema_migrations (component, version, checksum) VALUES ($1, $2, $3)",
                component,
                version,
                checksum,
            )
        applied_now.append(f"{component}/{version}")
    return applied_now


def service_migrations_dir(service: str) -> Path:
    """`<service>_service/migrations`, wherever the package is imported from (the repository, or a
    scaffolded service on another path)."""
    spec = importlib.util.find_spec(f"{service}_service")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))) / "migrations"
    return ROOT / f"{service}_service" / "migrations"


async def migrate(dsn: str, service: str, migrations_dir: Path | None = None) -> list[str]:
    directory = migrations_dir or service_migrations_dir(service)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " component TEXT NOT NULL, version TEXT NOT NULL, checksum TEXT NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (component, version))"
            )
            applied = await apply(conn, "shared", SHARED_MIGRATIONS)
            applied += await apply(conn, service, directory)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    finally:
        await conn.close()
    return applied


def database_url_for(service: str, environ: dict[str, str] | None = None) -> str | None:
    environ = os.environ if environ is None else environ
    if service not in SERVICE_DATABASES:
        raise SystemExit(f"unknown service {service!r}; one of: {', '.join(SERVICE_DATABASES)}")
    var = SERVICE_DATABASES[service]
    if var is None:
        return None
    dsn = environ.get(var)
    if not dsn:
        raise SystemExit(f"{var} is not set: the {service} service's migrations need it")
    return dsn


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if len(argv) != 1:
        print("usage: python -m shared.migrate <service>", file=sys.stderr)
        return 2
    service = argv[0].removesuffix("_service")
    dsn = database_url_for(service)
    if dsn is None:
        print(f"{service}: no PostgreSQL database; nothing to migrate")
        return 0
    applied = asyncio.run(migrate(dsn, service))
    print(
        f"{service}: applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else " (up to date)")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
