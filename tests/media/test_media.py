"""The media service as it is today (docs/media.md). Its own tests go beside this one."""

from shared.testing.checks import assert_healthy


async def test_media_starts_and_is_ready(client):
    await assert_healthy(client, "media")
