"""Platform metrics for admins and services (GET /analytics/platform) and the operator's dashboard
(GET /analytics/dashboard). Everything is read from the rollups (platform_metrics, the day rows of
activity_buckets), never from the raw events, so a query costs the buckets asked for, not the
events behind them."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from analytics_service.repositories import daily as daily_repo
from analytics_service.repositories import rollups as rollups_repo

SERIES = ("active_users", "messages", "new_users", "conversions", "cancellations", "revenue_cents")
STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
# The most buckets one request may ask for: a month of hours, two years of days.
MAX_BUCKETS = {"hour": 24 * 31, "day": 2 * 366}
MRR_WINDOW_DAYS = 30
TEMPLATE = Path(__file__).parent / "templates" / "dashboard.html"


def floor(ts: datetime, granularity: str) -> datetime:
    ts = ts.astimezone(UTC)
    ts = ts.replace(minute=0, second=0, microsecond=0)
    return ts.replace(hour=0) if granularity == "day" else ts


def buckets(start: datetime, end: datetime, granularity: str) -> list[datetime]:
    """The buckets that overlap [start, end)."""
    out, b = [], floor(start, granularity)
    while b < end:
        out.append(b)
        b += STEP[granularity]
    return out


async def platform(pool: asyncpg.Pool, start: datetime, end: datetime, granularity: str) -> dict[str, Any]:
    """Series per bucket plus the figures of the range:
    - active users per bucket (DAU for days); WAU and MAU: distinct users active on the 7 / 30
      UTC days ending with the range's last day;
    - MRR: revenue (payment.succeeded amounts) over the 30 days ending with each bucket's day,
      monthly plans' way of paying once per month;
    - paying subscribers: conversions (free -> paid) minus cancellations, ever, up to a point;
      churn: cancellations in the range / paying subscribers at its start (null when none)."""
    keys = buckets(start, end, granularity)
    first, last_end = keys[0], keys[-1] + STEP[granularity]
    last_day = floor(last_end - timedelta(microseconds=1), "day")
    first_day = floor(first, "day")
    mrr_from = first_day - timedelta(days=MRR_WINDOW_DAYS - 1)
    async with pool.acquire() as conn:
        rows = await rollups_repo.platform_rows(conn, granularity, list(SERIES), first, last_end)
        revenue_days = await rollups_repo.platform_rows(
            conn, "day", ["revenue_cents"], mrr_from, last_day + timedelta(days=1)
        )
        before = await rollups_repo.platform_totals_before(conn, ["conversions", "cancellations"], first)
        stored = await daily_repo.stored_actives(conn, last_day.date())
        day_before = (last_day - STEP["day"]).date()
        previous = None if stored is not None else await daily_repo.stored_actives(conn, day_before)
        if stored is not None:
            # A complete day the daily task stored: no distinct count over a month of users.
            wau, mau = stored["wau"], stored["mau"]
        elif previous is not None and previous["mau_trailing"] is not None:
            # Today (or a day not stored yet after a stored one): the day before's users of the
            # 6 / 29 days ending with it, plus this day's users who are not among them.
            new_week, new_month = await rollups_repo.newcomers(conn, last_day)
            wau, mau = previous["wau_trailing"] + new_week, previous["mau_trailing"] + new_month
        else:
            wau = await rollups_repo.distinct_active(conn, last_day - timedelta(days=6), last_day + timedelta(days=1))
            mau = await rollups_repo.distinct_active(conn, last_day - timedelta(days=29), last_day + timedelta(days=1))

    index = {b: i for i, b in enumerate(keys)}
    series = {m: [0] * len(keys) for m in SERIES}
    for r in rows:
        i = index.get(r["bucket"])
        if i is not None:
            series[r["metric"]][i] += int(r["value"])
    daily_revenue = {r["bucket"]: int(r["value"]) for r in revenue_days}

    def mrr(day: datetime) -> int:
        return sum(daily_revenue.get(day - timedelta(days=k), 0) for k in range(MRR_WINDOW_DAYS))

    series["mrr_cents"] = [mrr(floor(b, "day")) for b in keys]
    totals = {m: sum(series[m]) for m in SERIES if m != "active_users"}
    paying_at_start = before["conversions"] - before["cancellations"]
    paying_at_end = paying_at_start + totals["conversions"] - totals["cancellations"]
    return {
        "from": first.isoformat(),
        "to": last_end.isoformat(),
        "granularity": granularity,
        "buckets": [b.isoformat() for b in keys],
        "series": series,
        "totals": totals,
        "dau": series["active_users"][-1] if granularity == "day" else None,
        "wau": int(wau),
        "mau": int(mau),
        "mrr_cents": mrr(last_day),
        "paying_subscribers": max(paying_at_end, 0),
        "churn_rate": round(totals["cancellations"] / paying_at_start, 4) if paying_at_start > 0 else None,
    }


def render_dashboard(data: dict[str, Any], static_url: str) -> str:
    """The page with its data inline (no second request, no token in the browser) and the vendored
    Chart.js (analytics_service/static)."""
    payload = orjson.dumps(data).decode().replace("</", "<\\/")
    page = TEMPLATE.read_text()
    return (
        page.replace("{{CHART_JS}}", html.escape(static_url + "chart.umd.min.js"))
        .replace("{{RANGE}}", html.escape(f"{data['from'][:10]} to {data['to'][:10]} ({data['granularity']})"))
        .replace("{{DATA}}", payload)
    )
