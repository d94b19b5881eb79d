"""Platform metrics and the dashboard: figures from the rollups match the events sent, admins and
services only, bad ranges refused, and the dashboard's charts render in headless Chromium."""

import asyncio
import io
import shutil
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.analytics.conftest import event

pytestmark = pytest.mark.asyncio(loop_scope="session")

# A range no other test writes to (platform figures are global).
DAY0 = datetime(2024, 2, 10, tzinfo=UTC)
RANGE = {"from": "2024-02-10T00:00:00Z", "to": "2024-02-13T00:00:00Z"}


@pytest.fixture
def admin_headers(tokens):
    return tokens.headers(tokens.user(str(uuid.uuid4()), extra_claims={"app_metadata": {"roles": ["admin"]}}))


async def _seed(bus):
    users = [str(uuid.uuid4()) for _ in range(4)]
    a, b, c, d = users
    at = [DAY0 + timedelta(days=i, hours=10) for i in range(3)]
    events = [
        event("user.created", a, {}, at=at[0]),
        event("user.created", b, {}, at=at[0]),
        event("user.created", c, {"is_guest": True}, at=at[1]),
        *[event("message.sent", a, {"sender": "Frodo"}, at=at[0]) for _ in range(3)],
        event("message.sent", b, {"sender": "Sam"}, at=at[0]),
        event("message.sent", b, {"sender": "Sam", "regenerated": True}, at=at[0]),
        *[event("message.sent", c, {"sender": "Sam"}, at=at[1]) for _ in range(2)],
        event("message.sent", a, {"sender": "Frodo"}, at=at[2]),
        event("subscription.created", a, {"tier": 1, "previous_tier": 0}, at=at[0]),
        event("subscription.created", b, {"tier": 2, "previous_tier": 0}, at=at[1]),
        event("payment.succeeded", a, {"amount": 999}, at=at[0]),
        event("payment.succeeded", b, {"amount": 1999}, at=at[1]),
        event("subscription.cancelled", a, {"tier": 1}, at=at[2]),
        event("image.generated", d, {}, at=at[2]),
    ]
    await bus.send(*events)
    await bus.settled()


async def test_platform_figures_come_from_the_events(analytics, bus, tokens, admin_headers):
    await _seed(bus)
    service = tokens.headers(tokens.service())
    for headers in (service, admin_headers):
        r = await analytics.get("/analytics/platform", params={**RANGE, "granularity": "day"}, headers=headers)
        assert r.status_code == 200, r.text
        p = r.json()
        assert p["buckets"] == ["2024-02-10T00:00:00+00:00", "2024-02-11T00:00:00+00:00", "2024-02-12T00:00:00+00:00"]
        s = p["series"]
        assert s["active_users"] == [2, 1, 2]  # a, b | c | a, d (billing and sign-ups are not activity)
        assert s["messages"] == [4, 2, 1]  # the regenerated reply does not count
        assert s["new_users"] == [2, 0, 0]  # the guest is not a new user
        assert s["conversions"] == [1, 1, 0]
        assert s["cancellations"] == [0, 0, 1]
        assert s["revenue_cents"] == [999, 1999, 0]
        assert s["mrr_cents"] == [999, 2998, 2998]
        assert (p["dau"], p["wau"], p["mau"]) == (2, 4, 4)
        assert p["totals"] == {
            "messages": 7,
            "new_users": 2,
            "conversions": 2,
            "cancellations": 1,
            "revenue_cents": 2998,
        }
        assert p["paying_subscribers"] == 1 and p["churn_rate"] is None  # nobody was paying at the start

    hourly = await analytics.get(
        "/analytics/platform",
        params={"from": "2024-02-10T09:00:00Z", "to": "2024-02-10T12:00:00Z", "granularity": "hour"},
        headers=service,
    )
    assert hourly.status_code == 200, hourly.text
    assert hourly.json()["series"]["messages"] == [0, 4, 0]
    # From the day after: one paying subscriber at the start, one cancellation.
    later = await analytics.get(
        "/analytics/platform", params={"from": "2024-02-12T00:00:00Z", "to": "2024-02-13T00:00:00Z"}, headers=service
    )
    assert later.json()["churn_rate"] == 0.5  # two paying at the start (a and b), one left


async def test_platform_and_dashboard_refuse_users_and_bad_ranges(analytics, new_user, admin_headers):
    user = new_user()
    for path in ("/analytics/platform", "/analytics/dashboard", "/api/analytics/platform"):
        r = await analytics.get(path, headers=user.headers)
        assert r.status_code == 403 and r.json()["detail"]["code"] == "ADMIN_REQUIRED", r.text
        assert (await analytics.get(path)).status_code == 401
    for params in (
        {"from": "2024-02-13T00:00:00Z", "to": "2024-02-10T00:00:00Z"},
        {"from": "2020-01-01T00:00:00Z", "to": "2024-01-01T00:00:00Z"},
        {"from": "2024-01-01T00:00:00Z", "to": "2024-03-01T00:00:00Z", "granularity": "hour"},
        {"granularity": "week"},
        {"from": "yesterday"},
    ):
        r = await analytics.get("/analytics/platform", params=params, headers=admin_headers)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["detail"]["code"] in ("INVALID_RANGE", "VALIDATION_ERROR")


def _chromium(*args: str) -> str:
    import subprocess

    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        return subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--window-size=1280,900",
                "--virtual-time-budget=5000",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=90,
            check=True,
        ).stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package (scripts/apt-packages.txt) is not installed")
async def test_dashboard_renders_its_charts_in_chromium(analytics, bus, admin_headers):
    from PIL import Image

    await _seed(bus)
    page = await analytics.get("/analytics/dashboard", params=RANGE, headers=admin_headers)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    script = await analytics.get("/analytics/static/chart.umd.min.js")
    assert script.status_code == 200 and b"Chart.js v4" in script.content[:200]
    # The page as a browser gets it, its script at the same relative address.
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "static").mkdir()
        (root / "static" / "chart.umd.min.js").write_bytes(script.content)
        (root / "dashboard.html").write_text(page.text)
        url = (root / "dashboard.html").as_uri()
        dom = await asyncio.to_thread(_chromium, "--dump-dom", url)
        assert 'data-charts-rendered="4"' in dom, dom[-2000:]
        assert dom.count("<canvas") == 4
        shot = root / "shot.png"
        await asyncio.to_thread(_chromium, f"--screenshot={shot}", url)
        image = Image.open(io.BytesIO(shot.read_bytes())).convert("RGB")
        colours = image.getcolors(maxcolors=1_000_000)
        assert colours is not None and len(colours) > 50, "the screenshot is blank"
        # The charts' own line colours are on the page (drawn by Chart.js, not by the HTML).
        present = {c for _, c in colours}
        assert (0x3B, 0x6F, 0xD8) in present and (0x2A, 0x9D, 0x8F) in present
