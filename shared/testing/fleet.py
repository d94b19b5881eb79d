"""Several services as real uvicorn processes sharing one environment, for end-to-end tests and
the fleet benchmark: every service reaches Redis and RabbitMQ through its own cuttable TCP proxy
(so a test can take the dependency "down" for these services only, without touching the shared
servers other test runs use), and Stripe webhooks come from the sandbox to Payment's /webhook.

    fleet = Fleet(env, log_dir=tmp, services=("auth", "payment", "chat")).start()
    fleet.url("chat"); fleet.redis_proxy.cut(); fleet.amqp_proxy.restore(); fleet.stop()
"""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from shared.testing.processes import ServiceProcess, free_port
from shared.testing.proxy import ThreadedTcpProxy

# Settings the fleet's services run with besides the run's own infrastructure: generous rate limits
# (many virtual users share 127.0.0.1), no OTP cooldown, lighter argon2, webhooks and sweeps fast.
FLEET_DEFAULTS: dict[str, str] = {
    "RATE_LIMIT_PER_MINUTE": "1000000",
    **{
        f"RATE_LIMIT_{n}_PER_MINUTE": "1000000"
        for n in ("SIGNUP", "LOGIN", "OTP_VERIFY", "OTP_RESEND", "PASSWORD", "GUEST", "OAUTH", "REFRESH")
    },
    "OTP_RESEND_COOLDOWN_SECONDS": "0",
    "ARGON2_TIME_COST": "1",
    "ARGON2_MEMORY_KIB": "8192",
    "ARGON2_PARALLELISM": "1",
    "EMAIL_BACKEND": "file",
    "FRONTEND_URL": "https://app.scenextras.test",
    "STRIPE_MAX_NETWORK_RETRIES": "0",
    "STRIPE_TIMEOUT_SECONDS": "10",
    "SWEEP_INTERVAL_SECONDS": "5",
    "CHAT_STREAM_HEARTBEAT_SECONDS": "1",
    "CHAT_FOLLOW_UP_TIMEOUT_SECONDS": "5",
    "LOG_LEVEL": "WARNING",
}


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


class Fleet:
    def __init__(
        self,
        env: dict[str, str],
        *,
        log_dir: Path,
        services: tuple[str, ...] = ("auth", "payment", "chat"),
        outbox_dir: Path | None = None,
        proxied: bool = True,
        service_env: dict[str, dict[str, str]] | None = None,
    ):
        self.base_env = dict(env)
        self.log_dir = Path(log_dir)
        self.services = services
        self.outbox_dir = Path(outbox_dir) if outbox_dir else self.log_dir / "email-outbox"
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        self.proxied = proxied
        self.redis_proxy: ThreadedTcpProxy | None = None
        self.amqp_proxy: ThreadedTcpProxy | None = None
        self.procs: dict[str, ServiceProcess] = {}
        self.env: dict[str, str] = {}
        # Per-service additions to the shared environment (e.g. Community's EMAIL_BACKEND=sendgrid
        # while Auth keeps the file outbox the tests read codes from).
        self.service_env = service_env or {}

    def _build_env(self) -> dict[str, str]:
        env = {**FLEET_DEFAULTS, **self.base_env, "EMAIL_OUTBOX_DIR": str(self.outbox_dir)}
        if self.proxied:
            self.redis_proxy = ThreadedTcpProxy(*_host_port(env["REDIS_URL"], 6379)).start()
            self.amqp_proxy = ThreadedTcpProxy(*_host_port(env["RABBITMQ_URL"], 5672)).start()
            env["REDIS_URL"] = self.redis_proxy.rewrite(env["REDIS_URL"])
            env["RABBITMQ_URL"] = self.amqp_proxy.rewrite(env["RABBITMQ_URL"])
        return env

    def _env_of(self, service: str) -> dict[str, str]:
        return {**self.env, **self.service_env.get(service, {})}

    def start(self, timeout: float = 60.0) -> Fleet:
        self.env = self._build_env()
        # Ports chosen up front so every service knows where the others are (`<NAME>_SERVICE_URL`,
        # as Community's settings read them); without it a call between services went to the dev ports.
        ports = {name: free_port() for name in self.services}
        for name, port in ports.items():
            self.env.setdefault(f"{name.upper()}_SERVICE_URL", f"http://127.0.0.1:{port}")
        if "auth" in self.services:
            # Tokens of users Auth never had are refused fleet-wide, as in production
            # (shared/known_users.py): a fleet's tests create their users through Auth.
            self.env["KNOWN_USERS_CHECK"] = "1"
        errors: list[BaseException] = []
        # Payment first: its migrations define the quota functions Chat calls in the core database.
        order = sorted(self.services, key=lambda s: s != "payment")
        first, rest = order[0], order[1:]
        try:
            self.procs[first] = ServiceProcess(first, self._env_of(first), ports[first], log_dir=self.log_dir).start(
                timeout
            )

            def run(name: str) -> None:
                try:
                    proc = ServiceProcess(name, self._env_of(name), ports[name], log_dir=self.log_dir)
                    self.procs[name] = proc.start(timeout)
                except BaseException as exc:  # reported below
                    errors.append(exc)

            threads = [threading.Thread(target=run, args=(s,)) for s in rest]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                raise errors[0]
        except BaseException:
            self.stop()
            raise
        return self

    def url(self, service: str) -> str:
        return self.procs[service].url

    def log(self, service: str) -> str:
        return self.procs[service].log_path.read_text(errors="replace")

    def ready(self, service: str) -> httpx.Response:
        return httpx.get(self.url(service) + "/health/ready", timeout=5)

    def stop(self) -> None:
        threads = [threading.Thread(target=proc.stop) for proc in self.procs.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for proxy in (self.redis_proxy, self.amqp_proxy):
            if proxy is not None:
                proxy.close()

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
