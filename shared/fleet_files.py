"""The files made from the fleet manifest (shared/fleet.py) for what cannot run Python: the dev
Procfile, the postgres init script and docker compose file, the Dokku helpers (which also run on the
server and on macOS) and README's fleet table. Each renderer takes the manifest module `m` (the
repository's, or a copy a test scaffolded a service into). Standard library only, like the manifest:
`python -m shared.fleet generate|check` runs before the virtualenv exists.
"""

from __future__ import annotations

from pathlib import Path

GENERATED_NOTE = "generated from shared/fleet.py by `python -m shared.fleet generate`; do not edit by hand"


def render_procfile(m) -> str:
    lines = [
        f"# {GENERATED_NOTE}.",
        "# scripts/dev.sh runs it under honcho. honcho gives each process its own PORT (5000, 5100, ...);",
        "# PORT is set to the port uvicorn listens on, so the service's settings and logs agree with it.",
        "# The sandbox delivers Stripe webhooks to Payment, signed with STRIPE_WEBHOOK_SECRET (.local/fleet.env).",
        f"sandbox: .venv/bin/python -m sandbox --port {m.SANDBOX_PORT} --stripe-forward-to {m.payment_webhook_url()}",
    ]
    for s in m.SERVICES:
        uvicorn = f".venv/bin/uvicorn {s.package}.main:app --host 127.0.0.1 --port {s.dev_port}"
        lines.append(f"{s.name}: env PORT={s.dev_port} {uvicorn}")
    return "\n".join(lines) + "\n"


def render_postgres_init(m) -> str:
    own = [s for s in m.SERVICES if s.own_database]
    lines = [
        f"-- {GENERATED_NOTE}.",
        "-- docker-compose.dev.yml: the service databases next to the core one (as dokku-postgres gives",
        "-- " + ", ".join(f"{s.name}-db" for s in own) + " in production).",
    ]
    lines += [f"CREATE DATABASE {s.database_name};" for s in own]
    return "\n".join(lines) + "\n"


_COMPOSE_HEAD = """\
# docker-compose.dev.yml: the whole fleet in containers, built exactly as Dokku builds it (each
# service's Dockerfile with the repository root as context). For day-to-day work scripts/dev.sh
# runs the services from the venv instead; use this to check the images themselves.
# {note}.
#
#   docker compose -f docker-compose.dev.yml up --build
#   curl localhost:8001/health/ready
#
# Provider keys are not set here, so the services run with their providers unconfigured; add them
# under a service's `environment:` in a local override file (docker-compose.override.yml, never
# committed). SUPABASE_JWT_SECRET below is for local use only.
x-service-env: &service-env
  DATABASE_URL: postgresql://postgres:postgres@postgres:5432/{core}
  REDIS_URL: redis://redis:6379/0
  RABBITMQ_URL: amqp://scenextras:scenextras@rabbitmq:5672/%2F
  SUPABASE_JWT_SECRET: ${{SUPABASE_JWT_SECRET:-local-development-secret-not-for-production-0123}}
  ENVIRONMENT: development
  # Locally each container migrates at start; on Dokku the Procfile's release phase does it.
  MIGRATE_ON_START: "1"
  PORT: "5000"
  # Auth logs emails instead of sending them (the other services do not read it).
  EMAIL_BACKEND: console

x-depends: &depends
  postgres:
    condition: service_healthy
  redis:
    condition: service_healthy
  rabbitmq:
    condition: service_healthy

services:
  postgres:
    image: postgres:16
    environment:
      POSTGRES_USER: postgres
      POSTGRES_PASSWORD: postgres
      POSTGRES_DB: {core}
    volumes:
      - postgres-data:/var/lib/postgresql/data
      # {own_names} each get their own database, as on Dokku
      - ./infra/dev/postgres-init.sql:/docker-entrypoint-initdb.d/10-databases.sql:ro
    ports: ["5432:5432"]
    healthcheck:
      test: ["CMD", "pg_isready", "-U", "postgres"]
      interval: 2s
      retries: 30

  redis:
    image: redis:7-alpine
    ports: ["6379:6379"]
    healthcheck:
      test: ["CMD", "redis-cli", "ping"]
      interval: 2s
      retries: 30

  rabbitmq:
    image: rabbitmq:3-management
    environment:
      RABBITMQ_DEFAULT_USER: scenextras
      RABBITMQ_DEFAULT_PASS: scenextras
    ports: ["5672:5672", "15672:15672"]
    healthcheck:
      test: ["CMD", "rabbitmq-diagnostics", "-q", "ping"]
      interval: 5s
      retries: 30

  # Azure Blob Storage's emulator for the media service (its blob service only).
  azurite:
    image: mcr.microsoft.com/azure-storage/azurite:3.35.0
    command: ["azurite-blob", "--blobHost", "0.0.0.0", "--location", "/data",
              "--skipApiVersionCheck", "--disableTelemetry"]
    ports: ["10000:10000"]
    volumes:
      - azurite-data:/data
"""

# Azurite's published development account, as the media container reaches it.
AZURITE_IN_COMPOSE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://azurite:10000/devstoreaccount1;"
)

# The content service keeps its search index on disk: a named volume here, a Dokku storage mount there.
CONTENT_DATA_DIR_IN_IMAGE = "/app/data"


def render_compose(m) -> str:
    own = [s for s in m.SERVICES if s.own_database]
    out = [
        _COMPOSE_HEAD.format(
            note=GENERATED_NOTE,
            core=m.CORE_DATABASE_NAME,
            own_names=", ".join(s.name for s in own[:-1]) + " and " + own[-1].name,
        )
    ]
    volumes = ["postgres-data", "azurite-data"]
    for s in m.SERVICES:
        block = [
            "",
            f"  {s.app}:",
            "    build:",
            "      context: .",
            f"      dockerfile: {s.package}/Dockerfile",
            f'    ports: ["{s.dev_port}:5000"]',
            "    environment:",
            "      <<: *service-env",
        ]
        if s.own_database:
            block.append(f"      {s.database_var}: postgresql://postgres:postgres@postgres:5432/{s.database_name}")
        if s.name == "content":
            block.append(f"      CONTENT_DATA_DIR: {CONTENT_DATA_DIR_IN_IMAGE}")
            block += ["    volumes:", f"      - content-data:{CONTENT_DATA_DIR_IN_IMAGE}"]
            volumes.append("content-data")
        if s.name == "media":
            block.append(f'      AZURE_STORAGE_CONNECTION_STRING: "{AZURITE_IN_COMPOSE}"')
            block += ["    depends_on:", "      <<: *depends", "      azurite:", "        condition: service_started"]
        else:
            block.append("    depends_on: *depends")
        out.append("\n".join(block) + "\n")
    out.append("\nvolumes:\n" + "".join(f"  {v}:\n" for v in volumes))
    return "".join(out)


_FLEET_SH = """\
# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this file
# The SceneXtras fleet, sourced by infra/dokku/bootstrap.sh (on the Dokku server) and by
# deploy-all.sh (on an operator's machine). Plain functions and `case`, no associative arrays,
# so it also runs under the bash 3.2 that macOS ships, and no Python (the server may have none).
# {note}.

# Deploy order: Auth and Payment first, because their migrations create the shared core tables
# and the atomic quota functions that the other services call.
SX_SERVICES="{services}"

# Shared Dokku services (dokku-postgres, dokku-redis, dokku-rabbitmq).
SX_CORE_DB="scenextras-db"
SX_CACHE="scenextras-cache"
SX_QUEUE="scenextras-queue"

# Where the content service keeps its index on the host (a Dokku storage mount) and in the image.
SX_CONTENT_STORAGE="content-service-data"
SX_CONTENT_DATA_DIR="{content_data_dir}"

# The container port: no EXPOSE in the Dockerfiles, so Dokku sets PORT=5000 and proxies 80 -> 5000.
SX_CONTAINER_PORT=5000
SX_DEPLOY_BRANCH="main"

sx_is_service() {{
  case "$1" in
    {case_all}) return 0 ;;
    *) return 1 ;;
  esac
}}

# chat, chat_service, chat-service -> chat
sx_normalize() {{
  local name="$1"
  name="${{name%_service}}"
  name="${{name%-service}}"
  name="${{name%/}}"
  name="${{name%_service}}"
  printf '%s\\n' "$name"
}}

sx_app() {{ printf '%s-service\\n' "$1"; }}

sx_package() {{ printf '%s_service\\n' "$1"; }}

# The subdomain under the API domain (api.scenextras.com).
sx_subdomain() {{
  case "$1" in
{subdomain_cases}    *) printf '%s\\n' "$1" ;;
  esac
}}

# The service's own database (a dokku-postgres service) and the alias it is linked under, so the
# app sees <ALIAS>_URL next to the core DATABASE_URL. {core_users} own tables in the core
# database; {no_db} no PostgreSQL of its own.
sx_own_db() {{
  case "$1" in
    {case_own}) printf '%s-db\\n' "$1" ;;
    *) printf '\\n' ;;
  esac
}}

sx_own_db_alias() {{
  case "$1" in
{alias_cases}    *) printf '\\n' ;;
  esac
}}
"""


def render_fleet_sh(m) -> str:
    own = [s for s in m.SERVICES if s.own_database]
    subdomains = "".join(f"    {s.name}) printf '{s.subdomain}\\n' ;;\n" for s in m.SERVICES if s.subdomain != s.name)
    aliases = "".join(f"    {s.name}) printf '{s.database_var.removesuffix('_URL')}\\n' ;;\n" for s in own)
    core_users = [s.name.capitalize() for s in m.SERVICES if s.database_var == m.CORE_DATABASE_VAR]
    no_db = [s.name.capitalize() for s in m.SERVICES if s.database_var is None]
    return _FLEET_SH.format(
        note=GENERATED_NOTE,
        services=" ".join(m.names()),
        content_data_dir=CONTENT_DATA_DIR_IN_IMAGE,
        case_all=" | ".join(m.names()),
        subdomain_cases=subdomains,
        core_users=" and ".join(core_users),
        no_db=(" and ".join(no_db) + (" have" if len(no_db) > 1 else " has")) if no_db else "every other service has",
        case_own=" | ".join(s.name for s in own),
        alias_cases=aliases,
    )


README_BEGIN = "<!-- fleet table: generated from shared/fleet.py -->"
README_END = "<!-- end of fleet table -->"


def render_readme_table(m) -> str:
    rows = ["| service | port | subdomain in production | legacy prefix | database |", "|---|---|---|---|---|"]
    for s in m.SERVICES:
        prefixes = ", ".join(f"`{p}`" for p in s.legacy_prefixes)
        db = f"`{s.database_var}`" if s.database_var else "none (embedded store)"
        rows.append(f"| {s.name} | {s.dev_port} | {s.subdomain}.api | {prefixes} | {db} |")
    return "\n".join(rows) + "\n"


def _with_readme_table(m, text: str) -> str:
    start, end = text.index(README_BEGIN) + len(README_BEGIN), text.index(README_END)
    return text[:start] + "\n" + render_readme_table(m) + text[end:]


GENERATED: dict[str, object] = {
    "Procfile.dev": render_procfile,
    "docker-compose.dev.yml": render_compose,
    "infra/dev/postgres-init.sql": render_postgres_init,
    "infra/dokku/fleet.sh": render_fleet_sh,
    "README.md": _with_readme_table,  # only the table between the two markers
}


def expected(path: str, m, root: Path | None = None) -> str:
    """What `path` (relative to the repository root) should hold, made from the manifest `m`."""
    render = GENERATED[path]
    if path == "README.md":
        return render(m, ((root or m.ROOT) / path).read_text())
    return render(m)


def stale(m, root: Path | None = None) -> list[str]:
    """The generated files under `root` (default: the manifest's repository) that differ from `m`."""
    root = root or m.ROOT
    out = []
    for path in GENERATED:
        target = root / path
        if not target.exists() or target.read_text() != expected(path, m, root):
            out.append(path)
    return out


def generate(m, root: Path | None = None) -> list[str]:
    """Rewrite the stale ones; returns them."""
    root = root or m.ROOT
    written = []
    for path in stale(m, root):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(expected(path, m, root))
        written.append(path)
    return written
