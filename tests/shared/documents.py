"""Every service's app built for its OpenAPI document, and for running with the run's configuration."""

from __future__ import annotations

import importlib

from shared.testing.env import AZURITE_CONNECTION_STRING, TEST_JWT_SECRET, patched_environ

SERVICES = ["auth", "chat", "payment", "content", "media", "community", "analytics"]

# A document does not depend on configuration: these only let the settings load.
PLACEHOLDERS = {
    "SUPABASE_JWT_SECRET": TEST_JWT_SECRET,
    "DATABASE_URL": "postgresql://placeholder@127.0.0.1/placeholder",
    **{
        f"{name.upper()}_DATABASE_URL": "postgresql://placeholder@127.0.0.1/placeholder"
        for name in ("chat", "media", "community", "analytics")
    },
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:5672/",
    "AZURE_STORAGE_CONNECTION_STRING": AZURITE_CONNECTION_STRING,
}


def build_app(service: str, env: dict[str, str]):
    main = importlib.import_module(f"{service}_service.main")
    settings_module = importlib.import_module(f"{service}_service.settings")
    with patched_environ(env):
        settings = settings_module.Settings()
    return main.build_app(settings)


def document(service: str) -> dict:
    return build_app(service, PLACEHOLDERS).openapi()
