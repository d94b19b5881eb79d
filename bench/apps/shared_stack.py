"""The same endpoint behind the whole shared stack: factory middleware, JWT validation and the
Redis rate limit (uvicorn bench.apps.shared_stack:app)."""

from fastapi import APIRouter, Depends

from shared.app import create_app, lazy_app
from shared.auth import CurrentUser, get_current_user
from shared.settings import ServiceSettings, load_settings


def build_app(on_startup=()):
    router = APIRouter()

    @router.get("/ping")
    async def ping(user: CurrentUser = Depends(get_current_user)):
        return {"ok": True}

    return create_app(
        service="bench",
        settings=load_settings(ServiceSettings),
        routers=[router],
        use_database=False,
        on_startup=on_startup,
    )


__getattr__ = lazy_app(build_app)
