"""bench/apps/shared_stack.py with this branch's two per-request savings turned off, for a
before/after comparison in one run (bench/bench_shared.py): every token decoded by python-jose
(no shared.hs256 fast path) and one Redis call per rate-limit lease (no batching)."""

from shared.app import lazy_app
from shared.hs256 import HS256Verifier


class _OneCallPerLease:
    """What shared.ratelimit did before _LeaseBatcher: each lease fetch its own Redis call."""

    def __init__(self, redis):
        from shared.ratelimit import _SCRIPT

        self.script = redis.register_script(_SCRIPT)

    async def lease(self, key: str, window_ms: int, lease: int):
        return tuple(await self.script(keys=[key], args=[window_ms, lease]))


async def _as_before(app) -> None:
    app.state.token_validator._hs256 = HS256Verifier([], audience="authenticated")  # no keys: jose decides
    app.state.rate_lease_batcher = _OneCallPerLease(app.state.redis)


def build_app():
    from bench.apps.shared_stack import build_app as build_after

    return build_after(on_startup=[_as_before])


__getattr__ = lazy_app(build_app)
