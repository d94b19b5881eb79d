"""Migrations: recorded, safe to run twice, safe from two processes at once."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from shared import fleet
from shared.migrate import migrate
from shared.testing.env import create_database, drop_database

pytestmark = pytest.mark.asyncio(loop_scope="session")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def fresh_db(infra, run_id):
    name = f"{run_id}_mig_{os.urandom(3).hex()}"
    dsn = await create_database(infra, name)
    yield dsn
    await drop_database(infra, name)


@pytest.fixture
def migrations_dir(tmp_path):
    d = tmp_path / "migrations"
    d.mkdir()
    (d / "001_things.sql").write_text("CREATE TABLE things (id SERIAL PRIMARY KEY, name TEXT NOT NULL);")
    # Deliberately slow, so two concurrent runners really overlap.
    (d / "002_more.sql").write_text("SELECT pg_sleep(0.5); ALTER TABLE things ADD COLUMN size INT;")
    return d


async def test_migrations_run_twice_without_error(fresh_db, migrations_dir):
    first = await migrate(fresh_db, "demo", migrations_dir)
    assert first == [
        "shared/001_outbox.sql",
        "shared/002_outbox_claims.sql",
        "shared/003_erasure_second_passes.sql",
        "demo/001_things.sql",
        "demo/002_more.sql",
    ]
    assert await migrate(fresh_db, "demo", migrations_dir) == []
    conn = await asyncpg.connect(fresh_db)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 5
        await conn.execute("INSERT INTO things (name, size) VALUES ('x', 1)")
    finally:
        await conn.close()


async def test_failed_migration_leaves_nothing_half_applied(fresh_db, migrations_dir):
    (migrations_dir / "003_broken.sql").write_text("CREATE TABLE half (id INT); SELECT no_such_function();")
    with pytest.raises(asyncpg.PostgresError):
        await migrate(fresh_db, "demo", migrations_dir)
    conn = await asyncpg.connect(fresh_db)
    try:
        assert await conn.fetchval("SELECT to_regclass('half')") is None
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations WHERE component = 'demo'") == 2
    finally:
        await conn.close()


async def test_two_processes_at_once(fresh_db, migrations_dir):
    script = (
        "import asyncio, sys; from pathlib import Path; from shared.migrate import migrate; "
        "print(asyncio.run(migrate(sys.argv[1], 'demo', Path(sys.argv[2]))))"
    )
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            fresh_db,
            str(migrations_dir),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outs = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    applied = sorted((out[0].decode().strip() for out in outs), key=len)
    assert applied[0] == "[]"  # the second runner waited for the lock and found nothing to do
    assert "demo/002_more.sql" in applied[1]


def test_migrate_command_for_each_service(service_env):
    env = {**os.environ, **service_env}
    for service in fleet.names():
        for _ in range(2):
            result = subprocess.run(
                [sys.executable, "-m", "shared.migrate", service],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, result.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "shared.migrate", "nope"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert bad.returncode != 0 and "unknown service" in bad.stderr


def test_missing_setting_stops_start_up_naming_it(service_env):
    env = {k: v for k, v in {**os.environ, **service_env}.items() if k != "CHAT_DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-c", "import chat_service.main as m; m.app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "CHAT_DATABASE_URL: missing" in result.stderr
    assert "Traceback" not in result.stderr
