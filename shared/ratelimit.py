"""Rate limits on writes (per key and per client address) and on self-service subscriptions.

Moving windows kept by the `limits` package. With the default memory:// storage each process
counts on its own, so N replicas together allow N times the limit; point
UPR_RATE_LIMIT_STORAGE_URL at redis:// to share the counts.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.http import WRITE_METHODS, ProblemError, problem_response


class TooManyRequests(ProblemError):
    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.headers = {"Retry-After": str(retry_after)}


def _async_storage_url(url: str) -> str:
    return url if url.startswith("async+") else f"async+{url}"


class RateLimits:
    """The limits of one service process, checked by the middleware and by require_role."""

    def __init__(
        self,
        *,
        writes: str,
        subscribe: str,
        storage_url: str = "memory://",
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        self.writes: RateLimitItem = parse(writes)
        self.subscribe: RateLimitItem = parse(subscribe)
        self.limiter = MovingWindowRateLimiter(storage_from_string(_async_storage_url(storage_url)))

    @classmethod
    def from_settings(cls, settings: Any) -> RateLimits:
        """Limits as the settings say; unset `rate_limit_enabled` is off only in tests."""
        enabled = settings.rate_limit_enabled
        if enabled is None:
            enabled = settings.environment != "test"
        return cls(
            writes=settings.rate_limit_writes,
            subscribe=settings.rate_limit_subscribe,
            storage_url=settings.rate_limit_storage_url,
            enabled=enabled,
        )

    async def hit(self, item: RateLimitItem, scope: str, who: str) -> None:
        """Count one request; raise TooManyRequests (429, Retry-After) over the limit."""
        if not self.enabled:
            return
        if await self.limiter.hit(item, scope, who):
            return
        stats = await self.limiter.get_window_stats(item, scope, who)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise TooManyRequests(
            f"too many requests: the limit is {item}; retry in {retry_after} s",
            retry_after=retry_after,
        )

    async def hit_key(self, method: str, key_id: str) -> None:
        """The per-key limit on writes."""
        if method in WRITE_METHODS:
            await self.hit(self.writes, "writes-key", key_id)


async def limit_self_service(request: Request, scope: str, subject: str | None) -> None:
    """The tight limit on a request anyone may send that makes the service act for someone
    (send a confirmation, try a code): per client address, and per destination (an address or
    number) from any caller, so neither one caller nor many can flood an inbox or guess a code.
    The destination is hashed: no personal data is kept.
    """
    limits: RateLimits | None = getattr(request.app.state, "rate_limits", None)
    if limits is None:
        return
    # One budget per address for every self-service request, whatever it asks.
    await limits.hit(limits.subscribe, "self-service-address", client_address(request.scope))
    if subject:
        digest = hashlib.sha256(subject.strip().lower().encode()).hexdigest()
        await limits.hit(limits.subscribe, scope, digest)


def client_address(scope: Scope) -> str:
    """The caller's address (behind a proxy, run uvicorn with --proxy-headers)."""
    client = scope.get("client")
    return client[0] if client else "unknown"


class RateLimitMiddleware:
    """The per-address limit on every write."""

    def __init__(self, app: ASGIApp, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not self.limits.enabled
            or scope.get("method") not in WRITE_METHODS
        ):
            await self.app(scope, receive, send)
            return
        try:
            await self.limits.hit(self.limits.writes, "writes-address", client_address(scope))
        except TooManyRequests as exc:
            response = problem_response(exc.to_problem(scope.get("path")), exc.headers)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
