"""HTTP layer of the web service: read the other services' APIs, render pages and feeds."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from services.web import badges, charts, feeds
from services.web.i18n import Translator, negotiate
from services.web.pages import Lang, render
from services.web.upstream import (
    UpstreamFailed,
    UpstreamRejected,
    Upstreams,
    UpstreamUnavailable,
)

router = APIRouter()

CATALOG_FILTERS = (
    "q",
    "state_under_review",
    "cycle",
    "recommending_state",
    "response",
    "issue",
    "action_category",
    "responsible_body",
    "priority",
    "mechanism",
    "cluster",
)
RESPONSES = ("supported", "supported_in_part", "noted", "pending")
CADENCES = ("immediate", "daily", "weekly")
RecommendationId = Annotated[str, Path(max_length=120, pattern=r"^[A-Za-z0-9][A-Za-z0-9.()\-]*$")]
Token = Annotated[str, Query(max_length=500)]


def upstreams(request: Request) -> Upstreams:
    """The app's upstream clients."""
    return request.app.state.upstreams


def catalog_filters(request: Request) -> list[tuple[str, str]]:
    """The catalog filters in the query string, repeated values kept, empty ones dropped."""
    return [
        (k, v.strip())
        for k, v in request.query_params.multi_items()
        if k in CATALOG_FILTERS and v.strip()
    ]


def _facet_options(
    facets: dict[str, dict[str, int]], t: Translator
) -> dict[str, list[tuple[str, int]]]:
    """Each facet's (value, count) pairs in reading order: by name (in the page's language),
    number or position."""
    order = {value: i for i, value in enumerate(("short", "medium", "long", *RESPONSES))}
    keys = {
        "state_under_review": t.country,
        "recommending_state": t.country,
        "cycle": lambda v: int(v) if v.isdigit() else 0,
        "response": lambda v: order.get(v, 99),
        "priority": lambda v: order.get(v, 99),
    }
    return {
        name: sorted(counts.items(), key=lambda kv, k=keys.get(name, str.casefold): k(kv[0]))
        for name, counts in facets.items()
    }


def _reader(request: Request) -> str | None:
    return request.client.host if request.client else None


def _public_url(request: Request) -> str:
    return request.app.state.settings.public_url.rstrip("/")


# --- health ------------------------------------------------------------------------------


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    checks = await upstreams(request).ready()
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


# --- recommendations ---------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
@router.get("/recommendations", response_class=HTMLResponse)
async def recommendations_page(
    request: Request,
    t: Lang,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> HTMLResponse:
    """Search and filter recommendations (the catalog's filters), a page at a time."""
    filters = catalog_filters(request)
    api = upstreams(request)
    size = request.app.state.settings.page_size
    params = [*filters, ("limit", str(size)), *([("cursor", cursor)] if cursor else [])]
    error = None
    try:
        page, facets = await asyncio.gather(
            api.get("catalog", "/v1/recommendations", params),
            api.get("catalog", "/v1/recommendations/facets", filters),
        )
    except UpstreamRejected as exc:
        error = exc.detail
        page = {"items": [], "total": 0, "total_exact": True, "next_cursor": None}
        facets = {"total": 0, "facets": {}}
    selected = {k: request.query_params.get(k, "") for k in CATALOG_FILTERS}
    feed_query = urlencode(filters)
    return render(
        request,
        "recommendations.html.j2",
        t,
        status=422 if error else 200,
        page=page,
        facets=_facet_options(facets["facets"], t),
        selected=selected,
        responses=RESPONSES,
        error=error,
        cursor=cursor,
        feed_url="/feeds/changes.atom" + (f"?{feed_query}" if feed_query else ""),
    )


@router.get("/recommendations/{recommendation_id}", response_class=HTMLResponse)
async def recommendation_page(
    request: Request, recommendation_id: RecommendationId, t: Lang
) -> HTMLResponse:
    """One recommendation: text, responses, status per assessor type, evidence, timeline."""
    api = upstreams(request)
    base = f"/v1/recommendations/{recommendation_id}"
    rec, status, evidence, timeline = await asyncio.gather(
        api.get("catalog", base),
        api.get("monitoring", f"{base}/status", allow_404=True),
        api.get("monitoring", f"{base}/evidence", allow_404=True),
        api.get("monitoring", f"{base}/timeline", allow_404=True),
    )
    return render(
        request,
        "recommendation.html.j2",
        t,
        rec=rec,
        consolidated=status,
        # Anonymous calls only get public items; filtered again so a change upstream cannot
        # leak restricted evidence onto a public page.
        evidence=[e for e in evidence or [] if e.get("visibility") == "public"],
        timeline=sorted(timeline or [], key=lambda e: e["date"], reverse=True),
        badge_url=f"{_public_url(request)}/badges/{recommendation_id}.svg",
        page_url=f"{_public_url(request)}/recommendations/{recommendation_id}",
    )


# --- dashboard ---------------------------------------------------------------------------

DASHBOARD_GROUPS = ("response", "issue", "recommending_state", "responsible_body")
DASHBOARD_ROWS = 12


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard_page(
    request: Request,
    t: Lang,
    state_under_review: Annotated[str | None, Query(max_length=3)] = None,
    cycle: Annotated[int | None, Query(ge=1, le=20)] = None,
) -> HTMLResponse:
    """Implementation progress as server-drawn SVG bar charts, with the numbers as tables."""
    api = upstreams(request)
    params: dict[str, Any] = {}
    if state_under_review:
        params["state_under_review"] = state_under_review.upper()
    if cycle:
        params["cycle"] = cycle
    results = await asyncio.gather(
        *(api.get("monitoring", "/v1/stats", {**params, "group_by": g}) for g in DASHBOARD_GROUPS)
    )

    def status_label(status: str) -> str:
        return t(f"statuses.{status}")

    labels = {
        "response": lambda key: t(f"responses.{key}"),
        "issue": lambda key: key,
        "recommending_state": t.country,
        "responsible_body": lambda key: key,
    }
    sections = []
    for group_by, stats in zip(DASHBOARD_GROUPS, results, strict=True):
        groups = stats["groups"][:DASHBOARD_ROWS]
        title = t(f"dashboard.by_{group_by}")
        sections.append(
            {
                "id": group_by,
                "title": title,
                "svg": charts.stacked_bars(
                    f"chart-{group_by}",
                    title,
                    groups,
                    label=labels[group_by],
                    status_label=status_label,
                ),
                "groups": [{**g, "label": labels[group_by](g["key"])} for g in groups],
                "more": max(len(stats["groups"]) - DASHBOARD_ROWS, 0),
            }
        )
    return render(
        request,
        "dashboard.html.j2",
        t,
        overall=results[0]["overall"],
        sections=sections,
        statuses=charts.STATUS_ORDER,
        legend=charts.legend(status_label),
        state_under_review=params.get("state_under_review", ""),
        cycle=cycle,
    )


# --- subscribe, confirm, preferences, unsubscribe ----------------------------------------


def _split(value: str) -> list[str]:
    return [part for part in re.split(r"[\s,;]+", value) if part]


async def _subscribe_options(api: Upstreams, t: Translator) -> dict[str, Any]:
    issues, facets = await asyncio.gather(
        api.get("catalog", "/v1/issues"), api.get("catalog", "/v1/recommendations/facets")
    )
    states = sorted(facets["facets"].get("recommending_state", {}), key=t.country)
    return {
        "issues": issues,
        "states": states,
        "bodies": sorted(facets["facets"].get("responsible_body", {})),
        "cadences": CADENCES,
    }


@router.get("/subscribe", response_class=HTMLResponse)
async def subscribe_page(
    request: Request,
    t: Lang,
    recommendation_id: Annotated[list[str], Query(max_length=120)] = [],  # noqa: B006 - FastAPI copies list defaults
) -> HTMLResponse:
    """The self-service subscription form."""
    options = await _subscribe_options(upstreams(request), t)
    form = {
        "issues": [],
        "recommending_states": [],
        "responsible_bodies": [],
        "recommendation_ids": " ".join(recommendation_id),
        "language": t.language,
        "cadence": "immediate",
        "contact": "email",
    }
    return render(request, "subscribe.html.j2", t, form=form, error=None, **options)


@router.post("/subscribe", response_class=HTMLResponse)
async def subscribe(request: Request, t: Lang) -> HTMLResponse:
    """Forward the form to notifications (double opt-in: a confirmation is sent first)."""
    data = await request.form()
    contact = data.get("contact", "email")
    address = str(data.get("email" if contact == "email" else "phone", "")).strip()
    form = {
        "issues": data.getlist("issues"),
        "recommending_states": data.getlist("recommending_states"),
        "responsible_bodies": data.getlist("responsible_bodies"),
        "recommendation_ids": str(data.get("recommendation_ids", "")),
        "contact": contact,
        "email": str(data.get("email", "")),
        "phone": str(data.get("phone", "")),
        "name": str(data.get("name", "")),
        "language": str(data.get("language", t.language)),
        "cadence": str(data.get("cadence", "immediate")),
    }
    body: dict[str, Any] = {
        "language": form["language"],
        "cadence": form["cadence"],
        "filters": {
            "issues": form["issues"],
            "recommending_states": form["recommending_states"],
            "responsible_bodies": form["responsible_bodies"],
            "recommendation_ids": _split(form["recommendation_ids"]),
        },
    }
    if form["name"].strip():
        body["name"] = form["name"].strip()
    body["email" if contact == "email" else "phone"] = address or None
    api = upstreams(request)
    try:
        await api.request(
            "notifications", "POST", "/v1/subscribe", json=body, forwarded_for=_reader(request)
        )
    except UpstreamRejected as exc:
        options = await _subscribe_options(api, t)
        fields = sorted({e.get("field", "").rsplit(".", 1)[-1] for e in exc.errors})
        return render(
            request,
            "subscribe.html.j2",
            t,
            status=422,
            form=form,
            error=exc.detail,
            error_fields=fields,
            **options,
        )
    return render(
        request, "subscribed.html.j2", t, status=202, contact=contact, phone=form["phone"]
    )


@router.get("/confirm", response_class=HTMLResponse)
@router.get("/v1/confirm", response_class=HTMLResponse, include_in_schema=False)
async def confirm_page(
    request: Request, t: Lang, token: Annotated[str | None, Query(max_length=500)] = None
) -> HTMLResponse:
    """Ask to confirm (a button, so that link scanners do not confirm), or enter an SMS code."""
    return render(request, "confirm.html.j2", t, token=token, error=None, phone="")


@router.post("/confirm", response_class=HTMLResponse)
@router.post("/v1/confirm", response_class=HTMLResponse, include_in_schema=False)
async def confirm(request: Request, t: Lang) -> HTMLResponse:
    """Forward the link's token, or the phone number and code, to notifications."""
    data = await request.form()
    token = str(data.get("token", "")).strip() or request.query_params.get("token")
    phone = str(data.get("phone", "")).strip()
    code = str(data.get("code", "")).strip()
    body = {"token": token} if token else {"phone": phone, "code": code}
    try:
        subscription = await upstreams(request).request(
            "notifications", "POST", "/v1/confirm", json=body, forwarded_for=_reader(request)
        )
    except UpstreamRejected as exc:
        return render(
            request,
            "confirm.html.j2",
            t,
            status=exc.status,
            token=token,
            error=exc.detail,
            phone=phone,
        )
    return render(request, "confirmed.html.j2", t, subscription=subscription)


@router.get("/preferences", response_class=HTMLResponse)
@router.get("/v1/preferences", response_class=HTMLResponse, include_in_schema=False)
async def preferences_page(request: Request, t: Lang, token: Token) -> HTMLResponse:
    """The subscriber's settings and subscriptions, through the signed link."""
    current = await upstreams(request).get("notifications", "/v1/preferences", {"token": token})
    return render(
        request,
        "preferences.html.j2",
        t,
        token=token,
        current=current,
        cadences=CADENCES,
        saved=False,
        error=None,
    )


@router.post("/preferences", response_class=HTMLResponse)
async def save_preferences(request: Request, t: Lang, token: Token) -> HTMLResponse:
    """Forward the changed settings to notifications."""
    data = await request.form()
    body: dict[str, Any] = {
        "language": str(data.get("language", "")) or None,
        "timezone": str(data.get("timezone", "")).strip() or None,
        "cadence": str(data.get("cadence", "")) or None,
        "quiet_hours_start": str(data.get("quiet_hours_start", "")).strip() or None,
        "quiet_hours_end": str(data.get("quiet_hours_end", "")).strip() or None,
    }
    body = {k: v for k, v in body.items() if v is not None}
    api = upstreams(request)
    error = None
    try:
        await api.request(
            "notifications",
            "PUT",
            "/v1/preferences",
            params={"token": token},
            json=body,
            forwarded_for=_reader(request),
        )
    except UpstreamRejected as exc:
        if exc.status != 422:
            raise
        error = exc.detail
    current = await api.get("notifications", "/v1/preferences", {"token": token})
    return render(
        request,
        "preferences.html.j2",
        t,
        status=422 if error else 200,
        token=token,
        current=current,
        cadences=CADENCES,
        saved=error is None,
        error=error,
    )


@router.get("/unsubscribe", response_class=HTMLResponse)
@router.get("/v1/unsubscribe", response_class=HTMLResponse, include_in_schema=False)
async def unsubscribe_page(request: Request, t: Lang, token: Token) -> HTMLResponse:
    """Ask to confirm stopping every alert (the link is checked first)."""
    await upstreams(request).request(
        "notifications", "GET", "/v1/unsubscribe", params={"token": token}, expect_json=False
    )
    return render(request, "unsubscribe.html.j2", t, token=token)


@router.post("/unsubscribe", response_class=HTMLResponse)
@router.post("/v1/unsubscribe", response_class=HTMLResponse, include_in_schema=False)
async def unsubscribe(request: Request, t: Lang, token: Token) -> HTMLResponse:
    """Stop every alert; also the RFC 8058 one-click POST when messages link here."""
    await upstreams(request).request(
        "notifications",
        "POST",
        "/v1/unsubscribe",
        params={"token": token},
        forwarded_for=_reader(request),
    )
    return render(request, "unsubscribed.html.j2", t)


# --- feeds and badges --------------------------------------------------------------------


def _cacheable(request: Request, content: bytes | str, media_type: str) -> Response:
    max_age = request.app.state.settings.cache_max_age_s
    return Response(
        content,
        media_type=media_type,
        headers={
            "Cache-Control": f"public, max-age={max_age}",
            "Access-Control-Allow-Origin": "*",
            "Cross-Origin-Resource-Policy": "cross-origin",
        },
    )


@router.get("/feeds/changes.atom")
async def changes_feed(request: Request) -> Response:
    """Atom: the most recently changed recommendations matching the catalog filters."""
    settings = request.app.state.settings
    filters = catalog_filters(request)
    api = upstreams(request)
    page = await api.get(
        "catalog",
        "/v1/recommendations",
        [*filters, ("sort", "-updated_at"), ("limit", str(settings.feed_size))],
    )
    web = _public_url(request)
    query = urlencode(filters)
    suffix = f"?{query}" if query else ""
    body = feeds.atom(
        page["items"],
        feed_id=f"{web}/feeds/changes.atom{suffix}",
        title="UPR Tracker: changes" + (f" ({', '.join(v for _, v in filters)})" * bool(filters)),
        self_url=f"{web}/feeds/changes.atom{suffix}",
        alternate_url=f"{web}/recommendations{suffix}",
        web_url=web,
    )
    return _cacheable(request, body, "application/atom+xml; charset=utf-8")


@router.get("/feeds/deadlines.ics")
async def deadlines_feed(
    request: Request,
    responsible_body: Annotated[str | None, Query(max_length=200)] = None,
    state_under_review: Annotated[str | None, Query(min_length=3, max_length=3)] = None,
    cycle: Annotated[int | None, Query(ge=1, le=20)] = None,
    recommendation_id: Annotated[str | None, Query(max_length=120)] = None,
) -> Response:
    """iCalendar: monitoring's deadlines for a responsible body, a review or a recommendation."""
    params = {
        "responsible_body": responsible_body,
        "state_under_review": state_under_review.upper() if state_under_review else None,
        "cycle": cycle,
        "recommendation_id": recommendation_id,
    }
    params = {k: v for k, v in params.items() if v is not None}
    rows = await upstreams(request).get("monitoring", "/v1/deadlines", {**params, "limit": 1000})
    name = "UPR deadlines" + (f": {', '.join(str(v) for v in params.values())}" if params else "")
    body = feeds.calendar(
        rows, name=name, web_url=_public_url(request), now=dt.datetime.now(dt.UTC)
    )
    return _cacheable(request, body, "text/calendar; charset=utf-8")


@router.get("/badges/{recommendation_id}.svg")
async def badge(request: Request, recommendation_id: RecommendationId) -> Response:
    """An embeddable SVG badge of the recommendation's consolidated status."""
    # Only ?lang= chooses the language: shared caches keep one badge per URL.
    t = Translator(negotiate(request.query_params.get("lang"), None, None))
    font = t.meta.get("badge_font", "Verdana,DejaVu Sans,sans-serif")
    try:
        status = await upstreams(request).get(
            "monitoring", f"/v1/recommendations/{recommendation_id}/status", allow_404=True
        )
    except (UpstreamUnavailable, UpstreamFailed):
        svg = badges.badge(recommendation_id, t("badge.unavailable"), "unknown", font=font)
        return Response(
            svg, status_code=503, media_type="image/svg+xml", headers={"Cache-Control": "no-store"}
        )
    if status is None:
        svg = badges.badge(recommendation_id, t("badge.unknown"), "unknown", font=font)
        response = _cacheable(request, svg, "image/svg+xml")
        response.status_code = 404
        return response
    value = t(f"statuses.{status['status']}")
    svg = badges.badge(recommendation_id, value, status["status"], font=font)
    return _cacheable(request, svg, "image/svg+xml")
