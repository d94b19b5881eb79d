"""The analytics service as it is today (docs/analytics.md). Its own tests go beside this one."""
from shared.testing.checks import assert_healthy


async def test_analytics_starts_and_is_ready(client):
    await assert_healthy(client, "analytics")
