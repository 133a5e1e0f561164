"""The web service: public pages over the catalog, monitoring and notifications APIs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.web.pages import error_page
from services.web.routes import router
from services.web.settings import WebSettings
from services.web.upstream import Upstreams
from shared.http import BodyLimitMiddleware, ProblemError, RequestIdMiddleware
from shared.metrics import install_metrics

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
MAX_FORM_BYTES = 64 * 1024
# Pages use only their own stylesheet; no script, no frames, forms post to this site only.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class SecurityHeaders:
    """Headers every answer carries; tokens in page URLs never leave in a Referer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                names = {name for name, _ in headers}
                extra = {
                    b"x-content-type-options": b"nosniff",
                    b"referrer-policy": b"no-referrer",
                    b"content-security-policy": CSP.encode(),
                }
                headers.extend((k, v) for k, v in extra.items() if k not in names)
            await send(message)

        await self.app(scope, receive, add_headers)


def _plain(request: Request) -> bool:
    path = request.url.path
    return path.startswith(("/feeds/", "/badges/", "/readyz", "/healthz", "/metrics"))


def install_error_pages(app: FastAPI) -> None:
    """Every error is a friendly page in the reader's language (plain text for feeds)."""

    def answer(
        request: Request, status: int, detail: str | None, headers: dict[str, str] | None = None
    ) -> Response:
        if _plain(request):
            return PlainTextResponse(detail or "error", status_code=status, headers=headers)
        return error_page(request, status, detail, headers)

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> Response:
        headers = {"Retry-After": "30"} if exc.status == 503 else None
        return answer(request, exc.status, exc.detail, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        fields = ", ".join(dict.fromkeys(str(e.get("loc", ("", ""))[-1]) for e in exc.errors()))
        return answer(request, 422, fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return answer(request, exc.status_code, None, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return answer(request, 500, None)


def create_app(
    settings: WebSettings | None = None,
    *,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """The web service's FastAPI application; transports let tests reach in-process apps."""
    settings = settings or WebSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.upstreams = Upstreams(settings, transports)
        try:
            yield
        finally:
            await app.state.upstreams.close()

    app = FastAPI(
        title="UPR Tracker: web",
        version="0.1.0",
        summary="Public pages, feeds and badges",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    install_error_pages(app)
    install_metrics(app, "web")
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyLimitMiddleware, max_bytes=MAX_FORM_BYTES)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestIdMiddleware)
    return app
