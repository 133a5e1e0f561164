"""Clients of the catalog, monitoring and notifications public APIs, with errors mapped."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

import httpx

from services.web.settings import WebSettings
from shared.http import NotFound, ProblemError

log = logging.getLogger(__name__)

Service = Literal["catalog", "monitoring", "notifications"]


class UpstreamUnavailable(ProblemError):
    """A service did not answer (down, refused, timed out)."""

    status = 503
    title = "Service unavailable"


class UpstreamFailed(ProblemError):
    """A service answered with a server error or something that is not JSON."""

    status = 502
    title = "Bad gateway"


class UpstreamRejected(ProblemError):
    """A service refused the request (4xx other than 404): bad filter, invalid link..."""

    title = "Request refused"

    def __init__(self, status: int, detail: str, errors: list[dict[str, Any]] | None) -> None:
        super().__init__(detail)
        self.status = status
        self.errors = errors or []


class Upstreams:
    """One pooled httpx client per service."""

    def __init__(
        self,
        settings: WebSettings,
        transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        transports = transports or {}
        urls = {
            "catalog": settings.catalog_url,
            "monitoring": settings.monitoring_url,
            "notifications": settings.notifications_url,
        }
        self.clients: dict[str, httpx.AsyncClient] = {
            name: httpx.AsyncClient(
                base_url=url.rstrip("/"),
                timeout=settings.upstream_timeout_s,
                transport=transports.get(name),
                headers={"Accept": "application/json", "User-Agent": "upr-web"},
            )
            for name, url in urls.items()
        }

    async def close(self) -> None:
        """Close every client."""
        for client in self.clients.values():
            await client.aclose()

    async def request(
        self,
        service: Service,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        allow_404: bool = False,
        expect_json: bool = True,
        forwarded_for: str | None = None,
    ) -> Any:
        """The JSON answer of one call; errors become the problems above (or NotFound).

        forwarded_for names the reader's address, so that per-address limits upstream count
        readers rather than this service (uvicorn trusts it from FORWARDED_ALLOW_IPS only).
        """
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else None
        try:
            response = await self.clients[service].request(
                method, path, params=params, json=json, headers=headers
            )
        except httpx.TransportError as exc:
            log.warning("%s unreachable on %s %s: %r", service, method, path, exc)
            raise UpstreamUnavailable(f"the {service} service does not answer") from exc
        if response.status_code == 404:
            if allow_404:
                return None
            raise NotFound(_detail(response) or "not found")
        if 400 <= response.status_code < 500:
            body = _json(response) or {}
            raise UpstreamRejected(
                response.status_code,
                _detail(response) or "the request was refused",
                body.get("errors") if isinstance(body, dict) else None,
            )
        if response.status_code >= 500:
            log.warning("%s answered %s on %s %s", service, response.status_code, method, path)
            if response.status_code == 503:
                raise UpstreamUnavailable(f"the {service} service is not ready")
            raise UpstreamFailed(f"the {service} service failed")
        if not expect_json:
            return None
        body = _json(response)
        if body is None:
            raise UpstreamFailed(f"the {service} service answered something unexpected")
        return body

    async def get(self, service: Service, path: str, params: Any = None, **kw: Any) -> Any:
        """GET a JSON document."""
        return await self.request(service, "GET", path, params=params, **kw)

    async def ready(self) -> dict[str, str]:
        """Each service's /healthz, as ok or what failed (asked at once, not one by one)."""

        async def check(client: httpx.AsyncClient) -> str:
            try:
                response = await client.get("/healthz", timeout=3.0)
            except httpx.TransportError as exc:
                return f"unreachable: {type(exc).__name__}"
            return "ok" if response.status_code == 200 else str(response.status_code)

        results = await asyncio.gather(*(check(client) for client in self.clients.values()))
        return dict(zip(self.clients, results, strict=True))


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _detail(response: httpx.Response) -> str | None:
    body = _json(response)
    if isinstance(body, dict):
        return body.get("detail") or body.get("title")
    return None
