"""The community service as it is today (docs/community.md). Its own tests go beside this one."""
from shared.testing.checks import assert_healthy


async def test_community_starts_and_is_ready(client):
    await assert_healthy(client, "community")
