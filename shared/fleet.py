"""The fleet manifest: the one list of SceneXtras services.

Python reads `SERVICES` directly (migrations, the test plugin, scripts/fleet_env.py, benchmarks).
Shell scripts ask the CLI at run time (`python -m shared.fleet names|databases|database-env|urls`);
it needs only the standard library, so any python3 can answer before the virtualenv exists.
Files that cannot run Python (the dev Procfile, docker compose, the Dokku helpers that also run
on the server and on macOS) are generated from it (shared/fleet_files.py): `python -m shared.fleet
generate` rewrites them, `python -m shared.fleet check` (and tests/shared/test_fleet.py) fails while one is stale.

Adding a service: one `Service(...)` entry below, its package (`python -m scripts.new_service`
scaffolds it), then `python -m shared.fleet generate`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE_DATABASE_VAR = "DATABASE_URL"
CORE_DATABASE_NAME = "scenextras"  # the shared core database (users, profiles, subscriptions, quotas)
SANDBOX_PORT = 9100
PAYMENT_STRIPE_WEBHOOK_PATH = "/webhook"


@dataclass(frozen=True)
class Service:
    name: str  # "chat": the package is chat_service, the Dokku app chat-service
    dev_port: int  # the local fleet's port (scripts/dev.sh); also the Settings default
    subdomain: str  # production host: <subdomain>.api.scenextras.com
    legacy_prefixes: tuple[str, ...]  # the monolith's path prefixes this service answers under
    # The variable holding the database its migrations go to: CORE_DATABASE_VAR (tables in the
    # shared core database), "<NAME>_DATABASE_URL" (its own database), or None (no PostgreSQL).
    database_var: str | None
    consumes_events: bool  # binds <name>_service.events to the event exchange
    description: str

    @property
    def package(self) -> str:
        return f"{self.name}_service"

    @property
    def app(self) -> str:
        return f"{self.name}-service"

    @property
    def own_database(self) -> bool:
        return self.database_var is not None and self.database_var != CORE_DATABASE_VAR

    @property
    def database_name(self) -> str | None:
        """The database's name in the local fleet (dokku-postgres calls it <name>-db)."""
        if self.database_var is None:
            return None
        return self.name if self.own_database else CORE_DATABASE_NAME

    @property
    def events_queue(self) -> str:
        return f"{self.package}.events"


# Deploy order: Auth and Payment first, because their migrations create the shared core tables
# and the atomic quota functions that the other services call.
SERVICES: tuple[Service, ...] = (
    Service(
        "auth",
        8005,
        "auth",
        ("/api/auth", "/api/user_management"),
        CORE_DATABASE_VAR,
        True,
        "accounts, OTP, tokens, OAuth, referrals, deletion",
    ),
    Service(
        "payment",
        8002,
        "payment",
        ("/api/payments",),
        CORE_DATABASE_VAR,
        True,
        "Stripe, RevenueCat, subscriptions, quotas",
    ),
    Service(
        "chat", 8001, "chat", ("/api/chat",), "CHAT_DATABASE_URL", True, "character chat, streaming, the LLM router"
    ),
    Service(
        "content",
        8003,
        "search",
        ("/api/search",),
        None,
        False,
        "search over films, series and characters (embedded store)",
    ),
    Service(
        "media",
        8004,
        "media",
        ("/api/images", "/api/image"),
        "MEDIA_DATABASE_URL",
        True,
        "image generation and recognition, blob storage",
    ),
    Service(
        "community",
        8006,
        "community",
        ("/api/story", "/api/notifications"),
        "COMMUNITY_DATABASE_URL",
        True,
        "stories, fandom rooms, scenarios, votes, notifications",
    ),
    Service(
        "analytics",
        8007,
        "analytics",
        ("/api/analytics", "/api/conversation-stats"),
        "ANALYTICS_DATABASE_URL",
        True,
        "usage statistics, streaks, XP, platform metrics",
    ),
)
BY_NAME: dict[str, Service] = {s.name: s for s in SERVICES}


def names() -> list[str]:
    return [s.name for s in SERVICES]


def get(name: str) -> Service:
    """`chat`, `chat_service` and `chat-service` all name the chat service."""
    key = name.rstrip("/").removesuffix("_service").removesuffix("-service")
    try:
        return BY_NAME[key]
    except KeyError:
        raise SystemExit(f"unknown service {name!r}; one of: {', '.join(names())}") from None


def database_vars() -> dict[str, str]:
    """Every database variable of the fleet -> the local database name, core first."""
    out = {CORE_DATABASE_VAR: CORE_DATABASE_NAME}
    for s in SERVICES:
        if s.own_database:
            out[s.database_var] = s.database_name
    return out


def database_roles() -> dict[str, str]:
    """Test and benchmark runs create one database per role: "core" plus each own database.
    role -> the variable that points at it."""
    return {"core": CORE_DATABASE_VAR, **{s.name: s.database_var for s in SERVICES if s.own_database}}


def database_env(dsns_by_role: dict[str, str]) -> dict[str, str]:
    """{role: dsn} (as created for `database_roles()`) -> the environment variables."""
    return {var: dsns_by_role[role] for role, var in database_roles().items()}


def payment_webhook_url() -> str:
    """Where the local sandbox delivers Stripe events (what `stripe listen --forward-to` would)."""
    return f"http://127.0.0.1:{BY_NAME['payment'].dev_port}{PAYMENT_STRIPE_WEBHOOK_PATH}"


# -- CLI -----------------------------------------------------------------------------------------
USAGE = """usage: python -m shared.fleet COMMAND
  names                  the services, in deploy order, one per line
  databases              the local fleet's database names (core first), one per line
  database-env PG_BASE   VAR=PG_BASE/name for every database variable
  urls                   the local fleet's URLs, one service per line
  generate               rewrite the generated files that are stale
  check                  exit 1, naming them, when generated files are stale"""


def main(argv: list[str]) -> int:
    from shared import fleet_files  # the generated files' renderers (they read this module)

    if not argv:
        print(USAGE, file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    if command == "names":
        print("\n".join(names()))
    elif command == "databases":
        print("\n".join(database_vars().values()))
    elif command == "database-env" and len(args) == 1:
        print("\n".join(f"{var}={args[0].rstrip('/')}/{db}" for var, db in database_vars().items()))
    elif command == "urls":
        for s in SERVICES:
            print(f"  {s.name:<10} http://127.0.0.1:{s.dev_port}   (docs: /docs)")
    elif command == "generate":
        written = fleet_files.generate(sys.modules[__name__])
        print("\n".join(f"wrote {p}" for p in written) if written else "generated files are up to date")
    elif command == "check":
        out = fleet_files.stale(sys.modules[__name__])
        if out:
            print("stale (run `python -m shared.fleet generate`): " + ", ".join(out), file=sys.stderr)
            return 1
        print("generated files are up to date")
    else:
        print(USAGE, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
