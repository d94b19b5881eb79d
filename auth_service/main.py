"""uvicorn auth_service.main:app"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from auth_service.emails import build_mailer
from auth_service.events import handlers
from auth_service.maintenance import cleanup_loop
from auth_service.oauth import OAuthProviders
from auth_service.passwords import Passwords
from auth_service.routers import accounts, internal, oauth, referrals, tokens, users
from auth_service.service import Auth
from auth_service.settings import Settings
from shared.app import create_app, lazy_app
from shared.settings import load_settings
from shared.tasks import cancel_and_wait


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings(Settings)

    async def startup(app: FastAPI) -> None:
        passwords = Passwords(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            concurrency=settings.password_hash_concurrency,
        )
        app.state.background_tasks = set()
        app.state.auth = Auth(app, settings, passwords, build_mailer(settings), OAuthProviders(settings))
        app.state.cleanup = (
            asyncio.create_task(cleanup_loop(app, settings), name="auth-housekeeping")
            if settings.cleanup_interval_seconds > 0
            else None
        )

    async def shutdown(app: FastAPI) -> None:
        cleanup = getattr(app.state, "cleanup", None)
        await cancel_and_wait(cleanup)
        tasks = getattr(app.state, "background_tasks", set())
        if tasks:
            await asyncio.wait(list(tasks), timeout=10)
        auth = getattr(app.state, "auth", None)
        if auth is not None:
            await auth.mailer.close()
            await auth.oauth.close()

    return create_app(
        service="auth",
        settings=settings,
        routers=[accounts.router, tokens.router, oauth.router, users.router, referrals.router, internal.router],
        legacy_prefixes=["/api/auth", "/api/user_management"],
        consumer=handlers,
        on_startup=[startup],
        on_shutdown=[shutdown],
        # Services asking about users (shared.known_users) under one service identity: a restart
        # of a service asks about every active user at once. Service tokens only (require_service).
        rate_limit_exempt=["/internal/"],
    )


__getattr__ = lazy_app(build_app)
