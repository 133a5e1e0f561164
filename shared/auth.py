"""API keys with roles, stored hashed; reads are public, writes need a key."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from sqlalchemy import String, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import PlumbingBase, UTCDateTime, utcnow
from shared.http import Forbidden, NotFound, SessionDep, Unauthorized, problem_responses

Role = Literal["admin", "editor", "assessor"]
ROLE_RANK: dict[str, int] = {"assessor": 1, "editor": 2, "admin": 3}
KEY_PREFIX = "upr_"


class ApiKey(PlumbingBase):
    """An API key: only its SHA-256 is kept; the key itself is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    organisation: Mapped[str | None] = mapped_column(String(200))
    # The kind of organisation (monitoring: an assessor type); None leaves it to each request.
    organisation_type: Mapped[str | None] = mapped_column(String(40))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


@dataclass(frozen=True)
class Principal:
    """Who is calling: a stored key or the bootstrap admin key."""

    key_id: str
    name: str
    role: str
    organisation: str | None = None
    organisation_type: str | None = None

    def has_role(self, role: str) -> bool:
        return ROLE_RANK.get(self.role, 0) >= ROLE_RANK[role]


def hash_key(key: str) -> str:
    """The stored form of a key (keys are 256-bit random, so a plain SHA-256 suffices)."""
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    """A new random key in the form upr_<43 url-safe characters>."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def create_key(
    session: AsyncSession,
    *,
    name: str,
    role: str,
    organisation: str | None = None,
    organisation_type: str | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key and return it with its plaintext (shown once)."""
    if role not in ROLE_RANK:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLE_RANK)}")
    plaintext = generate_key()
    key = ApiKey(
        id=uuid.uuid4().hex,
        name=name,
        role=role,
        organisation=organisation,
        organisation_type=organisation_type,
        prefix=plaintext[:12],
        key_hash=hash_key(plaintext),
        created_at=utcnow(),
    )
    session.add(key)
    await session.flush()
    return key, plaintext


async def revoke_key(session: AsyncSession, key_id: str) -> bool:
    """Revoke an active key at once; False when no active key has this id."""
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def authenticate(
    session: AsyncSession, token: str, bootstrap: str | None
) -> Principal | None:
    """The principal a bearer token stands for, or None."""
    if bootstrap and hmac.compare_digest(token.encode(), bootstrap.encode()):
        return Principal(key_id="bootstrap", name="bootstrap admin", role="admin")
    key = await session.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_key(token), ApiKey.revoked_at.is_(None))
    )
    if key is None:
        return None
    return Principal(
        key_id=key.id,
        name=key.name,
        role=key.role,
        organisation=key.organisation,
        organisation_type=key.organisation_type,
    )


_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")


def require_role(role: str):
    """A dependency that returns the caller's principal if it holds at least this role."""

    async def dependency(
        request: Request,
        session: SessionDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None or not credentials.credentials:
            raise Unauthorized("this operation needs an API key (Authorization: Bearer <key>)")
        settings = request.app.state.settings
        bootstrap = settings.admin_api_key.get_secret_value() if settings.admin_api_key else None
        principal = await authenticate(session, credentials.credentials, bootstrap)
        if principal is None:
            raise Unauthorized("the API key is unknown or revoked")
        if not principal.has_role(role):
            raise Forbidden(f"this operation needs the {role} role; the key has {principal.role}")
        request.state.principal = principal
        limits = getattr(request.app.state, "rate_limits", None)
        if limits is not None:
            await limits.hit_key(request.method, principal.key_id)
        return principal

    return dependency


async def optional_principal(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal | None:
    """The caller on public reads: None without a key; a wrong key is still a 401."""
    if credentials is None or not credentials.credentials:
        return None
    settings = request.app.state.settings
    bootstrap = settings.admin_api_key.get_secret_value() if settings.admin_api_key else None
    principal = await authenticate(session, credentials.credentials, bootstrap)
    if principal is None:
        raise Unauthorized("the API key is unknown or revoked")
    return principal


OptionalKey = Annotated[Principal | None, Depends(optional_principal)]
EditorKey = Annotated[Principal, Depends(require_role("editor"))]
AdminKey = Annotated[Principal, Depends(require_role("admin"))]
AssessorKey = Annotated[Principal, Depends(require_role("assessor"))]
AUTH_ERRORS = problem_responses(Unauthorized, Forbidden)


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Role
    organisation: str | None = Field(None, max_length=200)
    organisation_type: str | None = Field(
        None,
        max_length=40,
        pattern=r"^[a-z][a-z0-9_]*$",
        description=(
            "The kind of organisation the key speaks for. On monitoring, an assessor key with "
            "one (e.g. ngo) may only record assessments of that assessor type."
        ),
    )


class KeyOut(BaseModel):
    id: str
    name: str
    role: str
    organisation: str | None
    organisation_type: str | None
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="The key itself. It is shown this once; store it now.")


def _key_out(key: ApiKey) -> dict[str, object]:
    return {
        "id": key.id,
        "name": key.name,
        "role": key.role,
        "organisation": key.organisation,
        "organisation_type": key.organisation_type,
        "prefix": key.prefix,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


def keys_router() -> APIRouter:
    """Admin routes to create, list and revoke API keys."""
    router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=AUTH_ERRORS)

    @router.post("", status_code=status.HTTP_201_CREATED, summary="Create an API key")
    async def create(body: KeyCreate, session: SessionDep, _: AdminKey) -> KeyCreated:
        key, plaintext = await create_key(
            session,
            name=body.name,
            role=body.role,
            organisation=body.organisation,
            organisation_type=body.organisation_type,
        )
        return KeyCreated(**_key_out(key), key=plaintext)

    @router.get("", summary="List API keys (never the keys themselves)")
    async def list_keys(session: SessionDep, _: AdminKey) -> list[KeyOut]:
        keys = (await session.scalars(select(ApiKey).order_by(ApiKey.created_at))).all()
        return [KeyOut(**_key_out(k)) for k in keys]

    @router.delete(
        "/{key_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        summary="Revoke an API key",
        responses=problem_responses(NotFound),
    )
    async def revoke(key_id: str, session: SessionDep, _: AdminKey) -> None:
        if not await revoke_key(session, key_id):
            raise NotFound(f"no active key with id {key_id!r}", field="path.key_id")

    return router
