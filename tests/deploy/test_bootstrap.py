"""infra/dokku/bootstrap.sh: the dry-run plan, env-file validation, and idempotence against a
stand-in `dokku` (tests/deploy/fake_dokku.sh) that keeps state like a server would."""

from __future__ import annotations

import base64
import collections
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from shared import fleet

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = ROOT / "infra" / "dokku" / "bootstrap.sh"
EXAMPLE = ROOT / "infra" / "dokku" / "scenextras.env.example"
FAKE = Path(__file__).with_name("fake_dokku.sh")

SERVICES = fleet.names()
OWN_DB = {s.name for s in fleet.SERVICES if s.own_database}
SUB = {s.name: s.subdomain for s in fleet.SERVICES}
SECRET = "a-very-long-jwt-secret-for-the-bootstrap-tests-0123456789"


def env_file(tmp_path: Path, extra: str = "", secret: str = SECRET) -> Path:
    text = EXAMPLE.read_text().replace("\nSUPABASE_JWT_SECRET=\n", f"\nSUPABASE_JWT_SECRET={secret}\n")
    path = tmp_path / "scenextras.env"
    path.write_text(text + extra)
    path.chmod(0o600)
    return path


def run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(BOOTSTRAP), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DOKKU": "/nonexistent/dokku", **(env or {})},
    )


def expected_commands(domain: str = "api.scenextras.com", email: str = "ops@example.com") -> list[str]:
    cmds = [
        f"dokku plugin:install https://github.com/dokku/dokku-{p}.git --name {p}"
        for p in ("postgres", "redis", "rabbitmq", "letsencrypt")
    ]
    cmds += [
        "dokku postgres:create scenextras-db",
        "dokku redis:create scenextras-cache",
        "dokku rabbitmq:create scenextras-queue",
    ]
    cmds += [f"dokku postgres:create {s}-db" for s in SERVICES if s in OWN_DB]
    for s in SERVICES:
        app, pkg = f"{s}-service", f"{s}_service"
        cmds += [
            f"dokku apps:create {app}",
            f"dokku domains:set {app} {SUB[s]}.{domain}",
            f"dokku builder:set {app} selected dockerfile",
            f"dokku builder-dockerfile:set {app} dockerfile-path {pkg}/Dockerfile",
            f"dokku app-json:set {app} appjson-path {pkg}/app.json",
            f"dokku ps:set {app} procfile-path {pkg}/Procfile",
            f"dokku git:set {app} deploy-branch main",
            f"dokku ps:set {app} stop-timeout-seconds 30",
            f"dokku ports:add {app} http:80:5000",
            f"dokku postgres:link scenextras-db {app} --no-restart",
            f"dokku redis:link scenextras-cache {app} --no-restart",
            f"dokku rabbitmq:link scenextras-queue {app} --no-restart",
            f"dokku letsencrypt:enable {app}",
        ]
        if s in OWN_DB:
            cmds.append(f"dokku postgres:link {s}-db {app} --alias {s.upper()}_DATABASE --no-restart")
    cmds += [
        "dokku storage:ensure-directory --chown heroku content-service-data",
        "dokku storage:mount content-service /var/lib/dokku/data/storage/content-service-data:/app/data",
        f"dokku letsencrypt:set --global email {email}",
        "dokku letsencrypt:cron-job --add",
    ]
    return cmds


def planned(stdout: str) -> list[str]:
    return [line.split(": ", 1)[1] for line in stdout.splitlines() if line.startswith("would ")]


def test_dry_run_prints_every_command_once(tmp_path):
    result = run(["--env-file", str(env_file(tmp_path)), "--dry-run", "--letsencrypt-email", "ops@example.com"])
    assert result.returncode == 0, result.stderr
    plan = planned(result.stdout)
    config_lines = [c for c in plan if c.startswith("dokku config:set")]
    others = [c for c in plan if not c.startswith("dokku config:set")]
    counts = collections.Counter(others)
    assert [c for c, n in counts.items() if n > 1] == []
    assert sorted(others) == sorted(expected_commands())
    # One config:set per app, with names only: no value reaches the output.
    assert sorted(re.search(r"--no-restart (\S+)", c).group(1) for c in config_lines) == sorted(
        f"{s}-service" for s in SERVICES
    )
    assert SECRET not in result.stdout + result.stderr
    chat = next(c for c in config_lines if " chat-service " in c)
    assert "SUPABASE_JWT_SECRET=…" in chat and "MIGRATE_ON_START=…" in chat
    content = next(c for c in config_lines if " content-service " in c)
    assert "CONTENT_DATA_DIR=…" in content
    # Order matters where one step needs another: plugins, then services, then apps, then links.
    assert plan.index("dokku plugin:install https://github.com/dokku/dokku-postgres.git --name postgres") < plan.index(
        "dokku postgres:create scenextras-db"
    )
    assert plan.index("dokku postgres:create chat-db") < plan.index("dokku apps:create auth-service")
    assert plan.index("dokku apps:create analytics-service") < plan.index(
        "dokku postgres:link scenextras-db auth-service --no-restart"
    )
    # The core database is linked before the service's own one, so it is the one named DATABASE_URL.
    assert plan.index("dokku postgres:link scenextras-db chat-service --no-restart") < plan.index(
        "dokku postgres:link chat-db chat-service --alias CHAT_DATABASE --no-restart"
    )


def test_dry_run_custom_domain(tmp_path):
    result = run(
        [
            "--env-file",
            str(env_file(tmp_path)),
            "--dry-run",
            "--domain",
            "api.staging.example.org",
            "--skip-letsencrypt",
        ]
    )
    assert result.returncode == 0, result.stderr
    plan = planned(result.stdout)
    assert "dokku domains:set content-service search.api.staging.example.org" in plan
    assert not [c for c in plan if "letsencrypt:" in c]


@pytest.mark.parametrize(
    "extra, secret, message",
    [
        ("", "", "SUPABASE_JWT_SECRET is missing"),
        ("", "too-short", "shorter than 32 characters"),
        ("\n[chat-service]\nDATABASE_URL=postgres://elsewhere/db\n", SECRET, "DATABASE_URL is set by Dokku"),
        ("\n[chat-service]\nREDIS_URL=redis://x\n", SECRET, "REDIS_URL is set by Dokku"),
        ("\n[billing-service]\nX=1\n", SECRET, "unknown section [billing-service]"),
        ("\n[chat-service]\nthis is not a setting\n", SECRET, "not KEY=VALUE"),
    ],
)
def test_bad_env_file_changes_nothing(tmp_path, extra, secret, message):
    state, log = tmp_path / "state.json", tmp_path / "log.jsonl"
    env = {
        "DOKKU": str(FAKE),
        "FAKE_DOKKU_STATE": str(state),
        "FAKE_DOKKU_LOG": str(log),
        "DOKKU_STORAGE_ROOT": str(tmp_path / "storage"),
    }
    result = run(["--env-file", str(env_file(tmp_path, extra, secret=secret))], env)
    assert result.returncode == 2
    assert message in result.stderr
    assert not log.exists(), "the env file is validated before dokku is called at all"


def test_missing_env_file_and_missing_dokku(tmp_path):
    assert "is required" in run([]).stderr
    assert run(["--env-file", str(tmp_path / "nope.env"), "--dry-run"]).returncode == 2
    no_dokku = run(["--env-file", str(env_file(tmp_path))])
    assert no_dokku.returncode == 2 and "run this on the Dokku server" in no_dokku.stderr


def test_world_readable_env_file_is_warned_about(tmp_path):
    path = env_file(tmp_path)
    path.chmod(0o644)
    result = run(["--env-file", str(path), "--dry-run"])
    assert result.returncode == 0
    assert "chmod 600" in result.stderr


class FakeServer:
    """A Dokku server as tests/deploy/fake_dokku.sh keeps it: a directory tree."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.state_dir = tmp_path / "state"
        self.log = tmp_path / "dokku.log"
        self.storage_root = tmp_path / "storage"
        self.storage_root.mkdir()
        self.extra = "\n[payment-service]\nSTRIPE_API_KEY='sk_live with spaces = and quotes\"'\n"
        self.env = {
            "DOKKU": str(FAKE),
            "FAKE_DOKKU_STATE": str(self.state_dir),
            "FAKE_DOKKU_LOG": str(self.log),
            "DOKKU_STORAGE_ROOT": str(self.storage_root),
        }

    def run(self, *args):
        if self.log.exists():
            self.log.unlink()
        result = run(["--env-file", str(env_file(self.tmp, self.extra)), *args], self.env)
        calls = [line.split("\t") for line in self.log.read_text().splitlines()] if self.log.exists() else []
        return result, [c[1:] for c in calls if c[0] == "M"]

    def config(self, app: str) -> dict[str, str]:
        d = self.state_dir / "apps" / app / "config"
        return {p.name: p.read_text() for p in d.iterdir()}

    def prop(self, app: str, flag: str) -> str:
        return (self.state_dir / "apps" / app / "props" / flag).read_text().strip()

    def storage(self, app: str) -> list[str]:
        return (self.state_dir / "apps" / app / "storage").read_text().split()

    def deploy_all(self):
        for app in (self.state_dir / "apps").iterdir():
            (app / "deployed").touch()


@pytest.fixture
def fake_server(tmp_path):
    if os.geteuid() != 0:
        # The stand-in dokku chowns the storage directory like Dokku does, which needs root. CI
        # runs as root: there, not running these is a failure, never a quiet skip.
        why = (
            f"NOT RUN: the bootstrap idempotence tests need root (running as uid {os.geteuid()}); "
            "the stand-in dokku chowns storage directories like Dokku does"
        )
        if os.environ.get("CI"):
            pytest.fail(why + "; CI must run the suite as root")
        pytest.skip(why)
    return FakeServer(tmp_path)


def test_second_run_changes_nothing(fake_server):
    first, mutations = fake_server.run("--letsencrypt-email", "ops@example.com")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "FAILED" not in first.stdout
    created = {" ".join(m) for m in mutations}
    assert (
        "apps:create chat-service" in created
        and "postgres:link chat-db chat-service --alias CHAT_DATABASE --no-restart" in created
    )
    # Nothing is deployed yet, so TLS waits for a deploy and says so.
    assert "not deployed yet" in first.stdout
    assert not [m for m in mutations if m[0].startswith("letsencrypt")]

    chat = fake_server.config("chat-service")
    assert chat["DATABASE_URL"] == "postgres://scenextras-db"
    assert chat["CHAT_DATABASE_URL"] == "postgres://chat-db"
    assert chat["REDIS_URL"] == "redis://scenextras-cache" and chat["RABBITMQ_URL"] == "rabbitmq://scenextras-queue"
    assert chat["SUPABASE_JWT_SECRET"] == SECRET and chat["MIGRATE_ON_START"] == "0"
    assert "STRIPE_API_KEY" not in chat
    payment = fake_server.config("payment-service")
    assert payment["STRIPE_API_KEY"] == 'sk_live with spaces = and quotes"'
    assert "PAYMENT_DATABASE_URL" not in payment
    assert fake_server.config("content-service")["CONTENT_DATA_DIR"] == "/app/data"
    assert fake_server.storage("content-service") == [f"{fake_server.storage_root}/content-service-data:/app/data"]
    assert os.stat(fake_server.storage_root / "content-service-data").st_uid == 1000
    assert fake_server.prop("chat-service", "--builder-dockerfile-dockerfile-path") == "chat_service/Dockerfile"
    assert fake_server.prop("content-service", "--domains-app-vhosts") == "search.api.scenextras.com"

    second, mutations = fake_server.run("--letsencrypt-email", "ops@example.com")
    assert second.returncode == 0, second.stdout + second.stderr
    assert mutations == []
    assert "0 changed" in second.stdout

    # After the first deploy, a re-run turns TLS on, once.
    fake_server.deploy_all()
    third, mutations = fake_server.run("--letsencrypt-email", "ops@example.com")
    assert third.returncode == 0, third.stdout
    assert sorted(" ".join(m) for m in mutations) == sorted(
        ["letsencrypt:set --global email ops@example.com", "letsencrypt:cron-job --add"]
        + [f"letsencrypt:enable {s}-service" for s in SERVICES]
    )
    fourth, mutations = fake_server.run("--letsencrypt-email", "ops@example.com")
    assert [" ".join(m) for m in mutations] == ["letsencrypt:cron-job --add"]  # idempotent by design
    # letsencrypt added https to the port map; bootstrap did not touch it again.
    assert fake_server.prop("chat-service", "--ports-map") == "http:80:5000 https:443:5000"


def test_a_changed_secret_is_the_only_change(fake_server):
    first, _ = fake_server.run("--skip-letsencrypt")
    assert first.returncode == 0, first.stdout
    fake_server.extra += "\n[chat-service]\nANTHROPIC_API_KEY=sk-ant-new\n"
    second, mutations = fake_server.run("--skip-letsencrypt")
    assert second.returncode == 0
    assert len(mutations) == 1
    argv = mutations[0]
    assert argv[:4] == ["config:set", "--encoded", "--no-restart", "chat-service"]
    assert [a.split("=", 1)[0] for a in argv[4:]] == ["ANTHROPIC_API_KEY"]
    assert base64.b64decode(argv[4].split("=", 1)[1]).decode() == "sk-ant-new"
    assert "sk-ant-new" not in second.stdout


def test_old_dokku_is_refused(fake_server, monkeypatch):
    monkeypatch.setenv("FAKE_DOKKU_VERSION", "dokku version 0.29.4")
    result, mutations = fake_server.run()
    assert result.returncode == 2 and "too old" in result.stderr
    assert mutations == []


def test_a_failing_step_stops_the_run(fake_server):
    first, _ = fake_server.run("--skip-letsencrypt")
    assert first.returncode == 0
    # chat-db's link record is gone but CHAT_DATABASE_URL is still set on the app (e.g. set by
    # hand): dokku-postgres refuses an alias whose variable is already set.
    (fake_server.state_dir / "services" / "postgres" / "chat-db" / "links" / "chat-service").unlink()
    fake_server.extra += "\n[media-service]\nSENTRY_DSN=https://key@sentry.example.com/1\n"
    second, mutations = fake_server.run("--skip-letsencrypt")
    assert [" ".join(m) for m in mutations] == ["postgres:link chat-db chat-service --alias CHAT_DATABASE --no-restart"]
    assert second.returncode == 1
    assert "FAILED" in second.stdout and "1 failed" in second.stdout
    assert "SENTRY_DSN" not in fake_server.config("media-service"), "nothing after the failed step ran"


def test_env_example_is_ignored_by_git_but_filled_copies_are():
    check = subprocess.run(["git", "check-ignore", "-q", "infra/dokku/scenextras.env"], cwd=ROOT, capture_output=True)
    assert check.returncode == 0, "a filled-in env file must be git-ignored"
    check = subprocess.run(["git", "check-ignore", "-q", "infra/dokku/scenextras.env.example"], cwd=ROOT)
    assert check.returncode == 1
    assert stat.S_IMODE(BOOTSTRAP.stat().st_mode) & 0o111, "bootstrap.sh is executable"
