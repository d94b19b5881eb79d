"""What a web or mobile client does, over HTTP only: sign up with the emailed code, fill in
details, chat, pay. Used by the end-to-end tests and by bench/bench_fleet.py."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PASSWORD = "correct horse battery staple"


def claims(token: str) -> dict:
    """The JWT's payload, as a client would read it (no verification: the services verify)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class Outbox:
    """The auth service's EMAIL_BACKEND=file outbox: one JSON file per email."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def messages(self, to: str, template: str = "otp_verify") -> list[dict]:
        out = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                message = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # written atomically, but a file may vanish between glob and read
            if message.get("to") == to and message.get("template") == template:
                out.append(message)
        return out

    async def code(self, to: str, template: str = "otp_verify", timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(to, template)
            if found:
                return found[-1]["context"]["code"]
            if time.monotonic() > deadline:
                raise AssertionError(f"no {template} email reached {to}")
            await asyncio.sleep(0.05)


@dataclass
class Fan:
    email: str
    password: str = PASSWORD
    user_id: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    referral_code: str | None = None
    conversations: list[str] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    def take(self, pair: dict) -> None:
        self.access_token = pair["access_token"]
        self.refresh_token = pair["refresh_token"]
        if "user" in pair:
            self.user_id = pair["user"]["id"]
            self.referral_code = pair["user"]["referral_code"]


def new_email(prefix: str = "fan") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


class Clients:
    """One httpx.AsyncClient per service (base URL = the service's root, like the clients' config)."""

    def __init__(self, urls: dict[str, str], timeout: float = 30.0, limits: httpx.Limits | None = None):
        self._clients = {
            name: httpx.AsyncClient(base_url=url, timeout=timeout, trust_env=False, limits=limits or httpx.Limits())
            for name, url in urls.items()
        }

    def __getattr__(self, name: str) -> httpx.AsyncClient:
        try:
            return self._clients[name]
        except KeyError:
            raise AttributeError(name) from None

    async def aclose(self) -> None:
        for c in self._clients.values():
            await c.aclose()


async def sign_up(http: Clients, outbox: Outbox, *, referral_code: str | None = None, email: str | None = None) -> Fan:
    """Flow 1's client side: create-account, the code from the email, verify, details."""
    fan = Fan(email or new_email())
    body = {"email": fan.email, "password": fan.password}
    if referral_code:
        body["referral_code"] = referral_code
    r = await http.auth.post("/create-account", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "pending_verification"
    code = await outbox.code(fan.email)
    r = await http.auth.post("/verify-otp", json={"email": fan.email, "code": code})
    assert r.status_code == 200, r.text
    fan.take(r.json())
    r = await http.auth.put(
        "/users/me/details",
        json={
            "name": "Fan " + fan.email[:8],
            "country": "GB",
            "language": "en",
            "preferences": {"genres": ["sci-fi"]},
            "onboarding_status": "completed",
        },
        headers=fan.headers,
    )
    assert r.status_code == 200, r.text
    return fan


async def refresh(http: Clients, fan: Fan) -> dict:
    r = await http.auth.post("/token/refresh", json={"refresh_token": fan.refresh_token})
    assert r.status_code == 200, r.text
    fan.take(r.json())
    return claims(fan.access_token)


async def quota(http: Clients, fan: Fan, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else fan.headers
    r = await http.payment.get("/quota", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def talk(
    http: Clients,
    fan: Fan,
    message: str,
    character: str = "Luke Skywalker",
    series: str | None = "Star Wars",
    conversation_id: str | None = None,
    token: str | None = None,
    **extra,
) -> httpx.Response:
    body = {"message": message, "character": character, **extra}
    if series:
        body["series"] = series
    if conversation_id:
        body["conversation_id"] = conversation_id
    headers = {"Authorization": f"Bearer {token}"} if token else fan.headers
    return await http.chat.post("/talk_with", json=body, headers=headers)


def parse_sse(text: str) -> list[tuple[str, dict | str]]:
    """Server-sent events as (event name, data parsed as JSON when it is)."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        if not data:
            continue
        raw = "\n".join(data)
        try:
            events.append((name, json.loads(raw)))
        except ValueError:
            events.append((name, raw))
    return events
