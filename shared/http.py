"""HTTP plumbing: problem+json errors, body limits, request ids, health and readiness."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.db import ping
from shared.logs import REQUEST_ID

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class Problem(BaseModel):
    """RFC 9457 problem details, with the offending fields named."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


class ProblemError(Exception):
    """A domain error that knows its HTTP status; subclasses set status and title."""

    status: int = 400
    title: str = "Bad request"

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://upr-tracker.org/problems/{self.title.lower().replace(' ', '-')}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
        }
        if self.field:
            body["errors"] = [{"field": self.field, "message": self.detail}]
        body.update(self.extra)
        return body


class NotFound(ProblemError):
    status = 404
    title = "Not found"


class Conflict(ProblemError):
    status = 409
    title = "Conflict"


class InvalidValue(ProblemError):
    """A well-formed request naming something that does not exist or is not allowed."""

    status = 422
    title = "Invalid value"


class PayloadTooLarge(ProblemError):
    status = 413
    title = "Payload too large"


class UnsupportedMediaType(ProblemError):
    status = 415
    title = "Unsupported media type"


class Unauthorized(ProblemError):
    status = 401
    title = "Unauthorized"


class Forbidden(ProblemError):
    status = 403
    title = "Forbidden"


class ServiceUnavailable(ProblemError):
    status = 503
    title = "Service unavailable"


def problem_responses(*errors: type[ProblemError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries documenting the problem+json answers a route can give."""
    return {
        error.status: {
            "model": Problem,
            "description": error.title,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for error in errors
    }


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSONResponse with the problem+json media type."""
    return JSONResponse(body, status_code=body["status"], media_type=PROBLEM_JSON, headers=headers)


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        head, rest = parts[0], parts[1:]
        return f"{head}.{'.'.join(rest)}" if rest else head
    return ".".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error as problem+json; never leak internals in a 500."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        headers = {**(headers or {}), **getattr(exc, "headers", {})} or None
        return problem_response(exc.to_problem(str(request.url.path)), headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field_name(tuple(e.get("loc", ()))), "message": e.get("msg", "invalid")}
            for e in exc.errors()
        ]
        fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
        return problem_response(
            {
                "type": "https://upr-tracker.org/problems/invalid-request",
                "title": "Invalid request",
                "status": 422,
                "detail": f"invalid value for {fields}" if fields else "invalid request",
                "instance": str(request.url.path),
                "errors": errors,
            }
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(
            {
                "type": "about:blank",
                "title": str(exc.detail) if exc.status_code < 500 else "Server error",
                "status": exc.status_code,
                "detail": str(exc.detail),
                "instance": str(request.url.path),
            },
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        log.warning("integrity error on %s: %s", request.url.path, type(exc.orig).__name__)
        return problem_response(
            Conflict("the change conflicts with the current state; reload and retry").to_problem(
                str(request.url.path)
            )
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    @app.exception_handler(OSError)
    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        sqlstate = str(getattr(getattr(exc, "orig", None), "sqlstate", None) or "")
        if sqlstate.startswith("22"):  # a data exception: the input, not the database
            return problem_response(_unstorable(request).to_problem(str(request.url.path)))
        log.warning("dependency unavailable on %s: %r", request.url.path, exc)
        return problem_response(
            {
                "type": "https://upr-tracker.org/problems/service-unavailable",
                "title": "Service unavailable",
                "status": 503,
                "detail": "a backing service (database or broker) is unavailable; retry later",
                "instance": str(request.url.path),
            },
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return problem_response(
            {
                "type": "about:blank",
                "title": "Server error",
                "status": 500,
                "detail": "an unexpected error occurred",
                "instance": str(request.url.path),
            }
        )


def _unstorable(request: Request) -> InvalidValue:
    """The 422 for a value PostgreSQL cannot hold (a NUL character, a number out of range)."""
    detail = "a value cannot be stored: NUL characters and out-of-range numbers are refused"
    for name, value in request.query_params.multi_items():
        if "\x00" in value or "\x00" in name:
            return InvalidValue(
                f"query parameter {name!r} contains a NUL character", field=f"query.{name}"
            )
    if "\x00" in request.url.path:
        return InvalidValue("the path contains a NUL character", field="path")
    return InvalidValue(detail, field="body")


# Per route (its dependant object, kept so its id cannot be reused): the names _query_names
# found. Routes never change after start-up, so their dependency trees are walked once.
_ROUTE_QUERY_NAMES: dict[int, tuple[Any, set[str], set[str]]] = {}


def _route_query_names(dependant: Any) -> tuple[set[str], set[str]]:
    known = _ROUTE_QUERY_NAMES.get(id(dependant))
    if known is None or known[0] is not dependant:
        known = (dependant, *_query_names(dependant))
        _ROUTE_QUERY_NAMES[id(dependant)] = known
    return known[1], known[2]


def _query_names(dependant: Any) -> tuple[set[str], set[str]]:
    """The query parameters a route declares (its dependencies' too): all, and one-valued."""
    from fastapi._compat import field_annotation_is_sequence

    names: set[str] = set()
    scalar: set[str] = set()
    for field in dependant.query_params:
        names.add(field.alias)
        if not field_annotation_is_sequence(field.field_info.annotation):
            scalar.add(field.alias)
    for sub in dependant.dependencies:
        sub_names, sub_scalar = _query_names(sub)
        names |= sub_names
        scalar |= sub_scalar
    return names, scalar


async def checked_query(request: Request) -> None:
    """Refuse (422) a query parameter the route does not take, a nameless one, or several
    values for a one-value parameter: a typo must not silently widen a filter."""
    if "" in request.query_params:
        raise InvalidValue("a query parameter has no name", field="query")
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None:
        return
    names, scalar = _route_query_names(dependant)
    for name in request.query_params:
        if name not in names:
            raise InvalidValue(f"unknown query parameter {name!r}", field=f"query.{name}")
        if name in scalar and len(request.query_params.getlist(name)) > 1:
            raise InvalidValue(
                f"query parameter {name!r} takes one value; it was given several",
                field=f"query.{name}",
            )


def install_problem_openapi(app: FastAPI) -> None:
    """Document what the error handlers really send: problem+json 422s, and 400 for bodies."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("Problem", Problem.model_json_schema())
        problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path_item in schema.get("paths", {}).values():
            for method, operation in path_item.items():
                responses = operation.setdefault("responses", {})
                if method in {"post", "put", "patch", "delete"}:
                    responses.setdefault(
                        "429",
                        {"description": "Too many requests (Retry-After)", "content": problem},
                    )
                invalid = responses.get("422")
                if invalid is None or PROBLEM_JSON not in invalid.get("content", {}):
                    responses["422"] = {"description": "Invalid request", "content": problem}
                if "requestBody" in operation:
                    responses.setdefault(
                        "400", {"description": "The body cannot be parsed", "content": problem}
                    )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class BodyLimitMiddleware:
    """Refuse request bodies over a size, whether declared or streamed (413)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._reject(scope, send)
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._reject(scope, send)

    async def _reject(self, scope: Scope, send: Send) -> None:
        response = problem_response(
            PayloadTooLarge(
                f"the request body exceeds {self.max_bytes} bytes", field="body"
            ).to_problem(scope.get("path"))
        )
        await response(scope, _empty_receive, send)


class _BodyTooLarge(Exception):
    pass


async def _empty_receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class RequestIdMiddleware:
    """Give every request an id (or keep the caller's) and echo it as X-Request-ID."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = (
            next((v.decode() for k, v in scope.get("headers", []) if k == b"x-request-id"), "")[:64]
            or uuid.uuid4().hex
        )
        scope.setdefault("state", {})["request_id"] = request_id
        token = REQUEST_ID.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed when the route returns, rolled back on error.

    A write's audit entry joins the same transaction.
    """
    from shared import audit

    async with request.app.state.session_factory() as session:
        try:
            audit.start(session, request)
            yield session
            await audit.record_write(session, request)
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def install_health_routes(
    app: FastAPI, extra_checks: dict[str, Callable[[], Awaitable[None]]] | None = None
) -> None:
    """/healthz answers while the process runs; /readyz checks the database and NATS."""

    @app.get("/healthz", tags=["health"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="The database and NATS are reachable",
        responses={503: {"description": "Names what is not reachable"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            await ping(request.app.state.engine)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
        bus = getattr(request.app.state, "bus", None)
        checks["nats"] = "ok" if bus is not None and bus.is_connected else "unreachable"
        for name, check in (extra_checks or {}).items():
            try:
                await check()
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"failing: {exc}"
        failing = [name for name, value in checks.items() if value != "ok"]
        if failing:
            return problem_response(
                {
                    "type": "https://upr-tracker.org/problems/not-ready",
                    "title": "Not ready",
                    "status": 503,
                    "detail": "not reachable: " + ", ".join(failing),
                    "checks": checks,
                }
            )
        return JSONResponse({"status": "ready", "checks": checks})


def install_plumbing(app: FastAPI, *, max_body_bytes: int, service: str) -> None:
    """Error handlers, middlewares, health routes, metrics and tracing every service has."""
    from shared.audit import audit_router
    from shared.metrics import install_metrics
    from shared.ratelimit import RateLimitMiddleware, RateLimits
    from shared.tracing import TraceMiddleware, configure_exporter

    install_error_handlers(app)
    install_problem_openapi(app)
    app.router.dependencies.append(Depends(checked_query))
    install_health_routes(app)
    app.include_router(audit_router())
    settings = getattr(app.state, "settings", None)
    app.state.rate_limits = RateLimits.from_settings(settings) if settings else None
    if app.state.rate_limits is not None:
        app.add_middleware(RateLimitMiddleware, limits=app.state.rate_limits)
    # After the rate limit: the metrics middleware wraps it and counts its 429s too.
    install_metrics(app, service)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(TraceMiddleware, service=service)
    configure_exporter(service)
