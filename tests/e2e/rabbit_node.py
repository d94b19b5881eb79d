"""A RabbitMQ node of a test's own: Debian's rabbitmq-server started as a second Erlang node beside
the shared one (its own node name, AMQP and distribution ports, data directory and no plugins),
so a test can stop and start the broker itself without any other test run noticing. The data
directory outlives a restart, as a production node's does: durable queues and persistent
messages come back from disk, which is what a restart test must prove.

    node = RabbitNode().start(); node.url; node.queue("q"); node.restart(); node.remove()
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pika

from shared.testing.processes import free_port

# The Debian package runs the node as this user (its wrapper switches to it, also for rabbitmqctl).
BROKER_USER = "rabbitmq"


class RabbitNode:
    def __init__(self) -> None:
        # Under /tmp itself: the broker's user must reach it (pytest's tmp_path is root's alone).
        self.dir = Path(tempfile.mkdtemp(prefix="e2e-rabbit-", dir="/tmp"))
        self.name = f"e2e{uuid.uuid4().hex[:10]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.pid_file = self.dir / "node.pid"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            # No configuration file: the defaults (guest may connect from localhost).
            "RABBITMQ_CONFIG_FILE": str(self.dir / "none"),
        }

    def _ctl(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["rabbitmqctl", "-q", "-n", self.name, *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, timeout: float = 90.0) -> RabbitNode:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "enabled_plugins").write_text("[].\n")
        user = pwd.getpwnam(BROKER_USER)
        for path in (self.dir, *self.dir.rglob("*")):
            os.chown(path, user.pw_uid, user.pw_gid)
        self.starts += 1
        log = open(self.dir / f"server-{self.starts}.log", "wb")
        self.proc = subprocess.Popen(
            ["rabbitmq-server"], env=self._env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(1, int(deadline - time.monotonic()))
            waited = self._ctl("wait", str(self.pid_file), "--timeout", str(remaining), timeout=remaining + 10)
            # `rabbitmqctl wait` gives up on a pid file it reads half-written (seen under load): asked again.
            if "garbage_in_pid_file" not in waited.stderr or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if waited.returncode != 0:
            tail = (self.dir / f"server-{self.starts}.log").read_text(errors="replace")[-3000:]
            self.kill()
            raise RuntimeError(f"RabbitMQ node {self.name} did not start: {waited.stderr}\n{tail}")
        return self

    def _node_pid(self) -> int | None:
        """The Erlang VM's own pid (the node writes it to its pid file), or None."""
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self, timeout: float = 60.0) -> None:
        """A clean shutdown (what `systemctl restart rabbitmq-server` does first): the node
        closes its connections, writes its queues to disk and exits."""
        pid = self._node_pid()
        if pid is not None and os.path.exists(f"/proc/{pid}"):
            self._ctl("stop", timeout=timeout)  # returns once the node is down
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """The VM itself by its pid (it does not run in the wrapper's process group: killing the
        group alone left every node of every run running), then the wrapper."""
        pid = self._node_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def remove(self) -> None:
        """Stopped (killed if it does not stop) and its data directory deleted: the end of the
        test module."""
        try:
            self.stop(timeout=30)
        finally:
            self.kill()
            shutil.rmtree(self.dir, ignore_errors=True)

    def queue(self, name: str) -> tuple[int, int] | None:
        """(messages ready, consumers) of queue `name`, by a passive declare; None when the queue
        does not exist. Blocking (pika's BlockingConnection): call it through asyncio.to_thread."""
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        try:
            channel = connection.channel()
            try:
                ok = channel.queue_declare(name, passive=True)
            except pika.exceptions.ChannelClosedByBroker:
                return None
            return ok.method.message_count, ok.method.consumer_count
        finally:
            if connection.is_open:
                connection.close()
