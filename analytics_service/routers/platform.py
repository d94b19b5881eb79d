"""Platform metrics and the operator's dashboard: admins (app_metadata.roles has "admin") and
service tokens only; users get 403 ADMIN_REQUIRED."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse

from analytics_service import errors, platform
from shared import errors as common
from shared.auth import CurrentUser, require_admin_or_service
from shared.errors import documented

router = APIRouter(prefix="/analytics", tags=["analytics"])

Admin = Annotated[CurrentUser, Depends(require_admin_or_service)]
ADMIN_ERRORS = documented(common.ADMIN_REQUIRED, errors.INVALID_RANGE)
CHART_JS = Path(__file__).resolve().parents[1] / "static" / "chart.umd.min.js"


def _range(start: datetime | None, end: datetime | None, granularity: str) -> tuple[datetime, datetime]:
    """Default: the last 30 days (days) or 48 hours (hours), up to now. A time without a zone is UTC."""
    end = _utc(end) if end else datetime.now(UTC)
    start = _utc(start) if start else end - (timedelta(days=30) if granularity == "day" else timedelta(hours=48))
    if start >= end:
        raise errors.INVALID_RANGE("`from` must be before `to`.")
    if len(platform.buckets(start, end, granularity)) > platform.MAX_BUCKETS[granularity]:
        raise errors.INVALID_RANGE(max_buckets=platform.MAX_BUCKETS[granularity])
    return start, end


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


FromQ = Annotated[datetime | None, Query(alias="from")]
ToQ = Annotated[datetime | None, Query(alias="to")]
GranularityQ = Annotated[Literal["hour", "day"], Query()]


@router.get("/platform", responses=ADMIN_ERRORS)
async def platform_metrics(
    request: Request, _: Admin, start: FromQ = None, end: ToQ = None, granularity: GranularityQ = "day"
):
    start, end = _range(start, end, granularity)
    return await platform.platform(request.app.state.db, start, end, granularity)


@router.get("/dashboard", response_class=HTMLResponse, responses=ADMIN_ERRORS)
async def dashboard(
    request: Request, _: Admin, start: FromQ = None, end: ToQ = None, granularity: GranularityQ = "day"
):
    start, end = _range(start, end, granularity)
    data = await platform.platform(request.app.state.db, start, end, granularity)
    # Relative, so the page works under every prefix the app is mounted at (/analytics, /api/analytics).
    return HTMLResponse(platform.render_dashboard(data, "static/"))


@router.get("/static/chart.umd.min.js", include_in_schema=False)
async def chart_js():
    """Chart.js, vendored (analytics_service/static/README): no CDN at run time."""
    return FileResponse(CHART_JS, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})
