"""What every part of the auth service layer shares: settings, pool, clients."""

from __future__ import annotations

import hashlib
import secrets

import asyncpg

from auth_service.emails import Mailer
from auth_service.oauth import OAuthProviders
from auth_service.passwords import Passwords
from auth_service.settings import Settings


def hash_refresh_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


class AuthBase:
    """Per-app state (app.state.auth): settings, pools and clients the flows need."""

    def __init__(self, app, settings: Settings, passwords: Passwords, mailer: Mailer, oauth: OAuthProviders):
        self.app = app
        self.settings = settings
        self.passwords = passwords
        self.mailer = mailer
        self.oauth = oauth

    @property
    def pool(self) -> asyncpg.Pool:
        return self.app.state.db
