async def test_health(client):
    r = await client.get("/health/ready")
    assert r.status_code == 200, r.text
