"""Scaffolds a new service in the one template (docs/conventions.md, "Adding a service").

    python -m scripts.new_service reviews --port 8008 --prefix /api/reviews --description "film reviews"
    python -m scripts.new_service reviews --port 8008 --database core     # tables in the core database
    python -m scripts.new_service reviews --port 8008 --database none     # no PostgreSQL

Writes <name>_service/ (main.py, settings.py, errors.py, service.py, routers/, repositories/,
Dockerfile, Procfile, app.json, requirements.txt), tests/<name>/ and docs/<name>.md, adds the
service's entry to shared/fleet.py and regenerates the files made from the manifest
(`python -m shared.fleet generate`). The
Dockerfile, Procfile, app.json and requirements.txt are media_service's, renamed: the skeletons
share one image recipe. `--root DIR` writes under DIR instead of the repository (the tests use
it); without a shared/fleet.py there, the manifest entry is printed instead.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared import fleet  # noqa: E402

REFERENCE = "media"  # the skeleton whose deployment files are copied
NAME_RE = re.compile(r"^[a-z][a-z0-9]{1,30}$")


def entry(name: str, port: int, subdomain: str, prefixes: list[str], database: str, description: str) -> fleet.Service:
    var = {"own": f"{name.upper()}_DATABASE_URL", "core": fleet.CORE_DATABASE_VAR, "none": None}[database]
    return fleet.Service(name, port, subdomain, tuple(prefixes), var, False, description)


def entry_source(s: fleet.Service) -> str:
    """The Service(...) line for shared/fleet.py's SERVICES."""
    var = {fleet.CORE_DATABASE_VAR: "CORE_DATABASE_VAR", None: "None"}.get(s.database_var) or json.dumps(s.database_var)
    prefixes = ", ".join(json.dumps(p) for p in s.legacy_prefixes)
    prefixes = f"({prefixes},)" if len(s.legacy_prefixes) == 1 else f"({prefixes})"
    return (
        f"    Service({json.dumps(s.name)}, {s.dev_port}, {json.dumps(s.subdomain)}, {prefixes}, {var}, "
        f"{s.consumes_events},\n            {json.dumps(s.description)}),\n"
    )


def _python_files(s: fleet.Service) -> dict[str, str]:
    pkg, title = s.package, s.name.capitalize()
    own_db_field = f"    {s.name}_database_url: str\n" if s.own_database else ""
    if s.own_database:
        db_args = f"        own_database_url=settings.{s.name}_database_url,\n"
    elif s.database_var is None:
        db_args = "        use_database=False,\n        outbox=False,\n"
    else:
        db_args = ""
    return {
        f"{pkg}/__init__.py": f'"""SceneXtras {s.name} service: {s.description}."""\n',
        f"{pkg}/main.py": f'''"""uvicorn {pkg}.main:app"""

from fastapi import FastAPI

from {pkg}.settings import Settings
from shared import fleet
from shared.app import create_app, lazy_app
from shared.settings import load_settings

SERVICE = fleet.get("{s.name}")


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings(Settings)
    return create_app(
        service=SERVICE.name,
        settings=settings,
        routers=[],  # one APIRouter per domain, from routers/<domain>.py
        legacy_prefixes=SERVICE.legacy_prefixes,
{db_args}    )


__getattr__ = lazy_app(build_app)
''',
        f"{pkg}/settings.py": f'''"""The {s.name} service's settings: everything ServiceSettings reads, plus its own."""

from shared import fleet
from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "{s.name}"
    port: int = fleet.get("{s.name}").dev_port
{own_db_field}''',
        f"{pkg}/errors.py": (
            f'''"""The {s.name} service's own error codes: `shared.errors.ErrorCode` constants, raised as
`raise errors.SOME_CODE()` and listed on a route with `responses=documented(...)`. The common
ones (NOT_FOUND, FORBIDDEN, ...) are in shared/errors.py. The service has no codes of its own yet.
"""
'''
        ),
        f"{pkg}/service.py": (
            f'''"""The {s.name} service's domain layer: its rules, called by routers/ (and events.py when it
consumes events), reaching the database only through repositories/. The service has no domain
yet: it answers health and readiness, and its database holds the shared outbox tables only.
"""
'''
        ),
        f"{pkg}/routers/__init__.py": (
            f'''"""The {s.name} service's FastAPI routers, one module per domain: validate input, call
service.py, shape the answer (pydantic models at the edges in models.py)."""
'''
        ),
        f"{pkg}/repositories/__init__.py": (
            f'''"""The {s.name} service's SQL, one module per domain: plain async functions over an asyncpg
connection whose caller owns the transaction."""
'''
        ),
        f"tests/{s.name}/__init__.py": "",
        f"tests/{s.name}/conftest.py": (
            f'''"""{title} test fixtures: the service in-process (its real lifespan) against the run's
PostgreSQL, Redis and RabbitMQ (shared.testing.plugin)."""

from __future__ import annotations

import pytest_asyncio


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def client(make_client):
    async with make_client("{s.name}") as c:
        yield c
'''
        ),
        f"tests/{s.name}/test_{s.name}.py": _test_module(s),
    }


def _test_module(s: fleet.Service) -> str:
    return f'''"""The {s.name} service as it is today (docs/{s.name}.md). Its own tests go beside this one."""

from shared.testing.checks import assert_healthy


async def test_{s.name}_starts_and_is_ready(client):
    await assert_healthy(client, "{s.name}")
'''


def _doc(s: fleet.Service) -> str:
    prefixes = ", ".join(f"`{p}`" for p in s.legacy_prefixes) or "none"
    if s.own_database:
        db = f"its own database, `{s.database_var}` (`{s.name}-db` on Dokku)"
    elif s.database_var:
        db = f"tables in the shared core database (`{s.database_var}`)"
    else:
        db = "no PostgreSQL"
    return f"""# {s.name.capitalize()} service

{s.description.capitalize()}.

| | |
|---|---|
| package | `{s.package}/` |
| local port | {s.dev_port} (`scripts/dev.sh`) |
| production | `{s.subdomain}.api.scenextras.com` (Dokku app `{s.app}`) |
| legacy prefixes | {prefixes} |
| database | {db} |
| events | {"consumes `" + s.events_queue + "`" if s.consumes_events else "consumes none"} |

## What exists today

A running skeleton built from the service template (docs/conventions.md): `GET /health`,
`GET /health/ready` (database, Redis, RabbitMQ), `/docs` and `/openapi.json`, migrations on
release (`python -m shared.migrate {s.name}`: the shared outbox tables only, no tables of its own
yet), the outbox relay (Procfile `relay`), and the shared stack (token validation, rate limits,
request ids, JSON logs). No routes, rules, tables or events of its own yet.

## Configuration

Everything in README.md's "Configuration"{", plus `" + s.database_var + "`" if s.own_database else ""}.
"""


def _deploy_files(s: fleet.Service, root: Path) -> dict[str, str]:
    ref = fleet.get(REFERENCE)
    out = {}
    for name in ("Dockerfile", "Procfile", "app.json", "requirements.txt"):
        text = (ROOT / ref.package / name).read_text()
        text = text.replace(ref.package, s.package).replace(ref.app, s.app)
        text = re.sub(rf"\b{ref.name}\b", s.name, text)
        out[f"{s.package}/{name}"] = text
    # The reference's one-line descriptions become the new service's.
    docker = out[f"{s.package}/Dockerfile"].splitlines(keepends=True)
    docker[1] = f"# {s.name.capitalize()}: {s.description}.\n"
    out[f"{s.package}/Dockerfile"] = "".join(docker)
    app_json = json.loads(out[f"{s.package}/app.json"])
    app_json["description"] = f"SceneXtras {s.name.capitalize()}: {s.description}."
    out[f"{s.package}/app.json"] = json.dumps(app_json, indent=2) + "\n"
    return out


def _add_to_manifest(s: fleet.Service, manifest: Path) -> None:
    text = manifest.read_text()
    marker = ")\nBY_NAME"
    if marker not in text:
        raise SystemExit(f"{manifest}: cannot find the end of SERVICES")
    manifest.write_text(text.replace(marker, entry_source(s) + marker, 1))


def scaffold(s: fleet.Service, root: Path = ROOT) -> list[Path]:
    files = {**_python_files(s), **_deploy_files(s, root), f"docs/{s.name}.md": _doc(s)}
    existing = [p for p in files if (root / p).exists()]
    if existing:
        raise SystemExit("refusing to overwrite: " + ", ".join(existing))
    written = []
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.new_service", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="lower case, e.g. reviews (package reviews_service, app reviews-service)")
    parser.add_argument("--port", type=int, required=True, help="the local fleet's port")
    parser.add_argument("--subdomain", help="production subdomain under api.scenextras.com (default: the name)")
    parser.add_argument("--prefix", action="append", default=[], help="a legacy path prefix (repeatable)")
    parser.add_argument("--database", choices=["own", "core", "none"], default="own")
    parser.add_argument("--description", default="(describe it in shared/fleet.py)")
    parser.add_argument("--root", type=Path, default=ROOT, help="write under this directory (default: the repository)")
    args = parser.parse_args(argv)
    if not NAME_RE.match(args.name):
        parser.error("the name is 2-31 lower-case letters or digits, starting with a letter")
    if args.name in fleet.BY_NAME:
        parser.error(f"{args.name} is already in shared/fleet.py")
    taken = {s.dev_port for s in fleet.SERVICES} | {fleet.SANDBOX_PORT}
    if args.port in taken:
        parser.error(f"port {args.port} is taken (the fleet uses {sorted(taken)})")
    if any(not p.startswith("/") or p.endswith("/") for p in args.prefix):
        parser.error("a prefix starts with / and does not end with one, e.g. /api/reviews")
    s = entry(args.name, args.port, args.subdomain or args.name, args.prefix, args.database, args.description)
    root = args.root.resolve()
    for path in scaffold(s, root):
        print(f"wrote {path.relative_to(root)}")
    manifest = root / "shared" / "fleet.py"
    if manifest.exists():
        _add_to_manifest(s, manifest)
        print("added it to shared/fleet.py")
        # The files generated from the manifest (Procfile.dev, compose, Dokku helpers, README table).
        subprocess.run([sys.executable, "-m", "shared.fleet", "generate"], cwd=root, check=True)
    else:
        print("add this entry to SERVICES in shared/fleet.py, then run python -m shared.fleet generate:")
        print(entry_source(s), end="")
    print(f"next: the checklist in docs/conventions.md; [{s.app}] in infra/dokku/scenextras.env.example")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
