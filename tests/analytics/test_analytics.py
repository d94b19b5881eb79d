"""The analytics service starts and is ready (docs/analytics.md); its domain is tested beside this."""

from shared.testing.checks import assert_healthy


async def test_analytics_starts_and_is_ready(client):
    await assert_healthy(client, "analytics")
