"""Static checks of what Dokku builds and runs: scripts, Dockerfiles, Procfiles, app.json,
requirements and the production env example. (No Docker daemon here: test_fresh_venv.py runs
each service from exactly what its Dockerfile copies, in a venv built only from its
requirements.txt.)"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess

import pytest

from shared import fleet
from tests.deploy.images import (
    ROOT,
    SERVICES,
    app_json,
    copy_sources,
    dockerfile_instructions,
    procfile,
    pyproject_pins,
    requirement_pins,
)

SCRIPTS = [
    "deploy-all.sh",
    "infra/dokku/bootstrap.sh",
    "infra/dokku/fleet.sh",
    "tests/deploy/fake_dokku.sh",
    "scripts/images.sh",
]
# What shared/ imports at run time; every image needs these.
SHARED_NEEDS = [
    "fastapi",
    "starlette",
    "uvicorn",
    "pydantic",
    "pydantic-settings",
    "asyncpg",
    "redis",
    "pika",
    "python-jose",
    "cryptography",
    "httpx",
    "orjson",
    "sentry-sdk",
]


def test_shellcheck_is_clean():
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed (it is in scripts/apt-packages.txt)"
    result = subprocess.run([shellcheck, "-x", "-S", "style", *SCRIPTS], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile(service):
    pkg = f"{service}_service"
    path = ROOT / pkg / "Dockerfile"
    instructions = dockerfile_instructions(path)
    words = [w for w, _ in instructions]
    assert instructions[0][0] == "FROM" and instructions[0][1].startswith("python:3.11"), "the Python the tests run on"
    # Every COPY source exists in the build context, which is the repository root.
    copies = copy_sources(path)
    for sources, _ in copies:
        for source in sources:
            assert (ROOT / source).exists(), (
                f"{pkg}/Dockerfile copies {source}, which does not exist at the repository root"
            )
    copied = {s.rstrip("/") for sources, _ in copies for s in sources}
    assert {"shared", pkg, f"{pkg}/requirements.txt", f"{pkg}/Procfile", f"{pkg}/app.json"} <= copied
    assert not {f"{other}_service" for other in SERVICES if other != service} & copied, "services never ship each other"
    assert "tests" not in copied and "." not in copied and "sandbox" not in copied
    # Dependencies are installed before the code is copied (layer caching).
    assert copied_index(copies, f"{pkg}/requirements.txt") < copied_index(copies, pkg)
    # Non-root, and PORT decides the port (no EXPOSE, so Dokku maps 80 -> $PORT=5000).
    users = [rest for w, rest in instructions if w == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert "EXPOSE" not in words
    assert dict(instructions)["WORKDIR"] == "/app"
    cmd = [rest for w, rest in instructions if w == "CMD"][-1]
    assert f"{pkg}.main:app" in cmd and "${PORT" in cmd
    if service == "content":
        assert "CONTENT_DATA_DIR=/app/data" in " ".join(rest for w, rest in instructions if w == "ENV")


def copied_index(copies, source):
    return next(i for i, (sources, _) in enumerate(copies) if source in {s.rstrip("/") for s in sources})


@pytest.mark.parametrize("service", SERVICES)
def test_procfile_runs_web_and_migrates_in_release(service):
    entries = procfile(service)
    # `relay`: the outbox relay as its own process (OUTBOX_RELAY=external), for services with an outbox
    assert set(entries) == ({"web", "release"} if service == "content" else {"web", "release", "relay"})
    if service != "content":
        assert entries["relay"] == f"python -m shared.relay {service}"
    web = entries["web"].split()
    assert web[:2] == ["uvicorn", f"{service}_service.main:app"]
    assert web[web.index("--port") + 1] == "$PORT" and web[web.index("--host") + 1] == "0.0.0.0"
    # Dokku word-splits the command without a shell: no quotes, globs or shell operators.
    assert not re.search(r"[\"'*?;&|<>`]", entries["web"])
    assert entries["release"] == f"python -m shared.migrate {service}"


@pytest.mark.parametrize("service", SERVICES)
def test_app_json_healthchecks_gate_traffic(service):
    data = app_json(service)
    checks = data["healthchecks"]["web"]
    startup = [c for c in checks if c["type"] == "startup"]
    assert startup and startup[0]["path"] == "/health/ready" and startup[0]["attempts"] >= 3
    liveness = [c for c in checks if c["type"] == "liveness"]
    assert all(c["path"] == "/health" for c in liveness), "a dependency outage must not restart every container"
    # Migrations run once per deploy, in the release phase: not also in predeploy.
    assert "migrate" not in str(data.get("scripts", {}))


@pytest.mark.parametrize("service", SERVICES)
def test_requirements_are_pinned_and_agree_with_pyproject(service):
    path = ROOT / f"{service}_service" / "requirements.txt"
    assert path.exists(), f"{service}_service/requirements.txt is missing"
    pins = requirement_pins(path)
    missing = [name for name in SHARED_NEEDS if name not in pins]
    assert not missing, f"{path.name} lacks shared/'s needs: {missing}"
    expected = pyproject_pins()
    drift = {n: (v, expected[n]) for n, v in pins.items() if n in expected and expected[n] != v}
    assert not drift, f"pins differ from pyproject.toml (requirements, pyproject): {drift}"


def read_env_example() -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current = None
    for line in (ROOT / "infra" / "dokku" / "scenextras.env.example").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"\[([a-z-]+)\]", line.strip())
        if match:
            current = match.group(1)
            sections[current] = {}
            continue
        key, _, value = line.partition("=")
        sections[current][key] = value
    return sections


def settings_fields(service: str) -> dict:
    return importlib.import_module(f"{service}_service.settings").Settings.model_fields


LINKED = {"REDIS_URL", "RABBITMQ_URL", *fleet.database_vars()}


def test_env_example_names_real_settings():
    from shared.settings import ServiceSettings

    sections = read_env_example()
    assert set(sections) == {"all"} | {f"{s}-service" for s in SERVICES}
    assert "SUPABASE_JWT_SECRET" in sections["all"] and sections["all"]["SUPABASE_JWT_SECRET"] == ""
    common = {name.upper() for name in ServiceSettings.model_fields}
    for key in sections["all"]:
        assert key in common, f"[all] {key} is not a setting every service reads"
    for service in SERVICES:
        fields = {name.upper() for name in settings_fields(service)}
        for key in sections[f"{service}-service"]:
            assert key in fields, f"[{service}-service] {key} is not a field of {service}_service.settings.Settings"


@pytest.mark.parametrize("service", SERVICES)
def test_every_required_or_secret_setting_has_a_source(service):
    """A required setting must come from a Dokku link, bootstrap's defaults, or the env example;
    every credential a service reads must be listed in the example so operators know of it."""
    sections = read_env_example()
    listed = (
        set(sections["all"])
        | set(sections[f"{service}-service"])
        | LINKED
        | {"PORT", "ENVIRONMENT", "MIGRATE_ON_START", "LOG_JSON"}
    )
    if service == "content":
        listed.add("CONTENT_DATA_DIR")
    secret = re.compile(r"(api_key|secret|_token$|dsn$|_auth$|client_ids$|app_id$|connection_string|^stripe_price)")
    for name, field in settings_fields(service).items():
        if field.is_required():
            assert name.upper() in listed, f"{service}: required setting {name.upper()} has no source in production"
        if secret.search(name) and name not in {"supabase_jwt_secret_previous"}:
            assert name.upper() in listed, (
                f"{service}: {name.upper()} is a credential missing from infra/dokku/scenextras.env.example"
            )


def test_docker_compose_builds_each_service_like_dokku():
    import yaml

    data = yaml.safe_load((ROOT / "docker-compose.dev.yml").read_text())
    init_sql = (ROOT / "infra" / "dev" / "postgres-init.sql").read_text()
    for service in SERVICES:
        spec = data["services"][f"{service}-service"]
        assert spec["build"] == {"context": ".", "dockerfile": f"{service}_service/Dockerfile"}
        assert (ROOT / spec["build"]["dockerfile"]).exists()
        assert spec["ports"][0].endswith(":5000") and spec["environment"]["PORT"] == "5000"
        required = {name.upper() for name, f in settings_fields(service).items() if f.is_required()}
        assert required <= set(spec["environment"]), f"{service}: compose lacks {required - set(spec['environment'])}"
        for name in {n for n in required if n.endswith("_DATABASE_URL")}:
            database = spec["environment"][name].rsplit("/", 1)[1]
            assert f"CREATE DATABASE {database};" in init_sql


def test_dockerignore_keeps_local_state_out_and_every_copy_source_in():
    import fnmatch

    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        return any(
            fnmatch.fnmatch(p, pat.removeprefix("**/")) or fnmatch.fnmatch(p, pat)
            for pat in patterns
            for p in prefixes + parts
        )

    for local in [".venv", ".local", ".git", "chat_service/__pycache__/x.pyc", "content_service/engine/_kernel.so"]:
        assert ignored(local), f".dockerignore sends {local}"
    for service in SERVICES:
        for sources, _ in copy_sources(ROOT / f"{service}_service" / "Dockerfile"):
            for source in sources:
                assert not ignored(source.rstrip("/")), (
                    f".dockerignore drops {source}, copied by {service}'s Dockerfile"
                )
