"""deploy-all.sh against local bare repositories standing in for the Dokku remotes.

Each "app" is a bare repository whose post-receive hook records the pushed ref and commit, and
whose pre-receive hook can be made to fail, as Dokku's does when a build or a healthcheck fails
(the push is rejected and the old release keeps serving). The script under test is the real one,
copied with fleet.sh into a scratch monorepo whose history the tests control.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from shared import fleet

ROOT = Path(__file__).resolve().parents[2]
FLEET = fleet.names()


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


class Fleet:
    def __init__(self, tmp: Path):
        self.repo = tmp / "monorepo"
        self.remotes = tmp / "remotes"
        self.pushes = tmp / "pushes.log"
        self.repo.mkdir()
        self.remotes.mkdir()
        shutil.copy(ROOT / "deploy-all.sh", self.repo / "deploy-all.sh")
        (self.repo / "infra" / "dokku").mkdir(parents=True)
        shutil.copy(ROOT / "infra" / "dokku" / "fleet.sh", self.repo / "infra" / "dokku" / "fleet.sh")
        for svc in FLEET:
            (self.repo / f"{svc}_service").mkdir()
            (self.repo / f"{svc}_service" / "main.py").write_text(f"# {svc}\n")
        (self.repo / "shared").mkdir()
        (self.repo / "shared" / "app.py").write_text("# shared\n")
        (self.repo / "docs").mkdir()
        (self.repo / "docs" / "notes.md").write_text("notes\n")
        git(self.repo, "init", "-q", "-b", "main")
        git(self.repo, "config", "user.email", "ops@example.com")
        git(self.repo, "config", "user.name", "Ops")
        self.commit("initial")
        for svc in FLEET:
            self.add_remote(f"{svc}-service")

    def add_remote(self, app: str, fail: bool = False):
        bare = self.remotes / f"{app}.git"
        if bare.exists():
            shutil.rmtree(bare)
        git(self.remotes, "init", "-q", "--bare", str(bare))
        hooks = bare / "hooks"
        post = hooks / "post-receive"
        post.write_text(f'#!/bin/sh\nwhile read old new ref; do echo "{app} $ref $new" >> "{self.pushes}"; done\n')
        post.chmod(0o755)
        if fail:
            pre = hooks / "pre-receive"
            pre.write_text(
                "#!/bin/sh\n"
                'echo "remote: -----> Building... failed: healthcheck /health/ready never answered 200" >&2\n'
                "exit 1\n"
            )
            pre.chmod(0o755)

    def commit(self, message: str, path: str | None = None) -> str:
        if path:
            target = self.repo / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(target.read_text() + message + "\n" if target.exists() else message + "\n")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", message)
        return git(self.repo, "rev-parse", "HEAD")

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("DOKKU_", "GIT_"))}
        environ["DOKKU_REMOTE_TEMPLATE"] = str(self.remotes / "{app}.git")
        environ.update(env or {})
        return subprocess.run(
            ["bash", str(self.repo / "deploy-all.sh"), *args],
            cwd=self.repo,
            capture_output=True,
            text=True,
            timeout=120,
            env=environ,
        )

    def received(self) -> list[tuple[str, str, str]]:
        if not self.pushes.exists():
            return []
        rows = [tuple(line.split()) for line in self.pushes.read_text().splitlines()]
        self.pushes.unlink()
        return rows

    def head_of(self, app: str) -> str | None:
        out = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "refs/heads/main"],
            cwd=self.remotes / f"{app}.git",
            capture_output=True,
            text=True,
        )
        return out.stdout.strip() or None


@pytest.fixture
def fleet(tmp_path):
    return Fleet(tmp_path)


def test_deploys_all_seven_in_order(fleet):
    head = git(fleet.repo, "rev-parse", "HEAD")
    result = fleet.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert fleet.received() == [(f"{s}-service", "refs/heads/main", head) for s in FLEET]
    for svc in FLEET:
        assert f"{svc}-service" in result.stdout and "deployed" in result.stdout


def test_named_subset_in_fleet_order_any_spelling(fleet):
    head = git(fleet.repo, "rev-parse", "HEAD")
    result = fleet.run("chat_service", "payment", "chat-service")
    assert result.returncode == 0, result.stderr
    assert fleet.received() == [("payment-service", "refs/heads/main", head), ("chat-service", "refs/heads/main", head)]


def test_changed_picks_the_services_whose_code_changed(fleet):
    assert fleet.run().returncode == 0
    fleet.received()

    # Only chat's directory changed: only chat is pushed.
    chat_commit = fleet.commit("chat fix", "chat_service/main.py")
    result = fleet.run("--changed")
    assert result.returncode == 0, result.stderr
    assert fleet.received() == [("chat-service", "refs/heads/main", chat_commit)]
    assert "skipped" in result.stdout and "unchanged since" in result.stdout

    # A docs-only change deploys nothing.
    fleet.commit("docs", "docs/notes.md")
    result = fleet.run("--changed")
    assert result.returncode == 0
    assert fleet.received() == []

    # shared/ changed: every service is rebuilt, each with the new commit.
    shared_commit = fleet.commit("shared fix", "shared/app.py")
    result = fleet.run("--changed")
    assert result.returncode == 0, result.stderr
    assert fleet.received() == [(f"{s}-service", "refs/heads/main", shared_commit) for s in FLEET]

    # Nothing new: nothing pushed, and the summary says why.
    result = fleet.run("--changed")
    assert result.returncode == 0
    assert fleet.received() == []
    assert result.stdout.count("skipped        already at") == 7


def test_changed_compares_with_each_apps_own_last_deploy(fleet):
    fleet.run()
    fleet.received()
    media_commit = fleet.commit("media change", "media_service/main.py")
    assert fleet.run("media").returncode == 0  # media is ahead of the others now
    fleet.received()
    # An auth change: auth differs from its last deploy; media already has the media change
    # and nothing of its own changed since; the rest do not see a change of theirs.
    auth_commit = fleet.commit("auth change", "auth_service/main.py")
    result = fleet.run("--changed")
    assert result.returncode == 0
    assert fleet.received() == [("auth-service", "refs/heads/main", auth_commit)]
    assert fleet.head_of("media-service") == media_commit
    # A brand-new app (never deployed) is deployed by --changed.
    fleet.add_remote("analytics-service")
    result = fleet.run("--changed", "analytics")
    assert fleet.received() == [("analytics-service", "refs/heads/main", auth_commit)]
    assert "never deployed" in result.stdout


def test_failing_push_stops_the_run(fleet):
    fleet.add_remote("media-service", fail=True)
    head = git(fleet.repo, "rev-parse", "HEAD")
    result = fleet.run()
    assert result.returncode != 0
    assert fleet.received() == [
        (f"{s}-service", "refs/heads/main", head) for s in ["auth", "payment", "chat", "content"]
    ]
    assert fleet.head_of("media-service") is None
    assert fleet.head_of("community-service") is None and fleet.head_of("analytics-service") is None
    summary = result.stdout[result.stdout.index("\nservice ") :]
    assert "media      media-service      FAILED" in summary
    assert "community  community-service  not attempted" in summary
    assert "auth       auth-service       deployed" in summary
    assert "healthcheck /health/ready never answered 200" in result.stderr


def test_unreachable_remote_with_changed_fails(fleet):
    shutil.rmtree(fleet.remotes / "payment-service.git")
    result = fleet.run("--changed")
    assert result.returncode != 0
    assert [r[0] for r in fleet.received()] == ["auth-service"]
    assert "cannot read the remote" in result.stdout


def test_dry_run_pushes_nothing(fleet):
    head = git(fleet.repo, "rev-parse", "HEAD")
    result = fleet.run("--dry-run")
    assert result.returncode == 0
    assert fleet.received() == []
    lines = [line for line in result.stdout.splitlines() if "would run: git push" in line]
    assert len(lines) == 7
    assert f"{fleet.remotes}/chat-service.git {head}:refs/heads/main" in result.stdout
    # --changed --dry-run reads the remotes but still pushes nothing.
    fleet.run()
    fleet.received()
    fleet.commit("chat", "chat_service/main.py")
    result = fleet.run("--changed", "--dry-run")
    assert fleet.received() == []
    assert [line.split(":")[0] for line in result.stdout.splitlines() if "would run" in line] == ["==> chat"]


def test_rollback_needs_force(fleet):
    first = git(fleet.repo, "rev-parse", "HEAD")
    second = fleet.commit("chat v2", "chat_service/main.py")
    assert fleet.run("chat").returncode == 0
    fleet.received()
    refused = fleet.run("--ref", first, "chat")
    assert refused.returncode != 0, "going back in history is refused without --force"
    assert fleet.head_of("chat-service") == second
    result = fleet.run("--ref", first, "--force", "chat")
    assert result.returncode == 0, result.stderr
    assert fleet.received() == [("chat-service", "refs/heads/main", first)]


def test_bad_arguments_push_nothing(fleet):
    result = fleet.run("billing")
    assert result.returncode == 2 and "unknown service 'billing'" in result.stderr
    result = fleet.run("--ref", "no-such-tag")
    assert result.returncode == 2 and "no commit" in result.stderr
    result = fleet.run(env={"DOKKU_REMOTE_TEMPLATE": "{user}@{host}:{app}"})
    assert result.returncode == 2 and "DOKKU_HOST is not set" in result.stderr
    assert fleet.received() == []


def test_default_remote_is_dokku_at_host(fleet):
    result = fleet.run(
        "--dry-run", "auth", env={"DOKKU_REMOTE_TEMPLATE": "{user}@{host}:{app}", "DOKKU_HOST": "dokku.example.com"}
    )
    assert result.returncode == 0
    assert "git push dokku@dokku.example.com:auth-service " in result.stdout
    result = fleet.run("--dry-run", "auth", env={"DOKKU_REMOTE_TEMPLATE": "", "DOKKU_HOST": "dokku.example.com"})
    assert "git push dokku@dokku.example.com:auth-service " in result.stdout


def test_uncommitted_changes_are_warned_about(fleet):
    (fleet.repo / "chat_service" / "main.py").write_text("# edited, not committed\n")
    result = fleet.run("--dry-run", "chat")
    assert "uncommitted changes are NOT deployed" in result.stderr
