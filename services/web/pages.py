"""Rendering: the Jinja environment, the language of a request, and HTML error pages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from services.web.i18n import COOKIE, Translator, catalogues, languages, negotiate

TEMPLATES = Path(__file__).parent / "templates"
env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    extensions=["jinja2.ext.do"],
)


def translator(request: Request) -> Translator:
    """The request's language: ?lang=, then the lang cookie, then Accept-Language."""
    return Translator(
        negotiate(
            request.query_params.get("lang"),
            request.cookies.get(COOKIE),
            request.headers.get("accept-language"),
        )
    )


Lang = Annotated[Translator, Depends(translator)]


def url_with(request: Request, **changes: Any) -> str:
    """The current path and query with some parameters replaced (None drops one)."""
    items = [(k, v) for k, v in request.query_params.multi_items() if k not in changes]
    for key, value in changes.items():
        if value is not None:
            items.append((key, str(value)))
    query = urlencode(items)
    return request.url.path + (f"?{query}" if query else "")


def render(
    request: Request, template: str, t: Translator, *, status: int = 200, **context: Any
) -> HTMLResponse:
    """A page in the request's language; ?lang= is remembered in a cookie."""
    html = env.get_template(template).render(
        request=request,
        t=t,
        lang=t.language,
        languages=[(code, catalogues()[code]["_meta"]["name"]) for code in languages()],
        lang_url=lambda code: url_with(request, lang=code),
        url_with=lambda **changes: url_with(request, **changes),
        country=t.country,
        state=t.state,
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers={"Vary": "Accept-Language, Cookie"})
    wanted = (request.query_params.get("lang") or "").lower()
    if wanted in catalogues() and request.cookies.get(COOKIE) != wanted:
        response.set_cookie(COOKIE, wanted, max_age=365 * 24 * 3600, samesite="lax", httponly=True)
    return response


def error_page(
    request: Request,
    status: int,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """A friendly page for an error status, in the request's language; never a traceback."""
    t = translator(request)
    key = f"errors.{status}" if t.has(f"errors.{status}.title") else "errors.other"
    response = render(
        request, "error.html.j2", t, status=status, title=t(f"{key}.title"), key=key, detail=detail
    )
    response.headers.update(headers or {})
    return response
