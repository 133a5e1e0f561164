"""Use cases on evidence: add (with an optional file), verify, and decide who sees what."""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring import deadlines
from services.monitoring.assessments import organisation_for
from services.monitoring.models import Evidence, TrackedRecommendation
from services.monitoring.recommendations import SOURCE, ref
from services.monitoring.schemas import EvidenceIn, VerificationIn
from shared.auth import Principal
from shared.db import utcnow
from shared.events import EvidenceAdded, EvidenceSnapshot, EvidenceVerified, VerificationSnapshot
from shared.http import InvalidValue, NotFound, PayloadTooLarge, UnsupportedMediaType
from shared.outbox import record_event


class EvidenceNotFound(NotFound):
    title = "Evidence not found"


def can_see(evidence: Evidence, principal: Principal | None) -> bool:
    """Public evidence is for everyone; restricted only for editors, admins and its owners."""
    if evidence.visibility == "public":
        return True
    if principal is None:
        return False
    if principal.has_role("editor"):
        return True
    return principal.organisation is not None and (
        principal.organisation == evidence.submitter_organisation
    )


def can_see_submitter(evidence: Evidence, principal: Principal | None) -> bool:
    """Under reprisal risk only admins learn who submitted the evidence."""
    if not evidence.reprisal_risk:
        return True
    return principal is not None and principal.has_role("admin")


def out(evidence: Evidence, principal: Principal | None) -> dict[str, Any]:
    """The evidence as the API shows it to this caller."""
    identified = can_see_submitter(evidence, principal)
    return {
        "id": evidence.id,
        "recommendation_id": evidence.recommendation_id,
        "kind": evidence.kind,
        "title": evidence.title,
        "url": evidence.url,
        "published_on": evidence.published_on,
        "description": evidence.description,
        "visibility": evidence.visibility,
        "reprisal_risk": evidence.reprisal_risk,
        "submitter_organisation": evidence.submitter_organisation if identified else None,
        "submitter_name": evidence.submitter_name if identified else None,
        "file": None
        if evidence.file_sha256 is None
        else {
            "name": evidence.file_name,
            "type": evidence.file_type,
            "size": evidence.file_size,
            "sha256": evidence.file_sha256,
            "href": f"/v1/evidence/{evidence.id}/file",
        },
        "verification": {
            "status": evidence.verification_status,
            "by": evidence.verified_by,
            "at": evidence.verified_at,
            "reason": evidence.verification_reason,
        },
        "created_at": evidence.created_at,
    }


def snapshot(evidence: Evidence) -> EvidenceSnapshot:
    """The evidence as events carry it (never the submitter)."""
    restricted = evidence.visibility == "restricted"
    # Events reach every subscriber: restricted evidence travels without its title or link.
    return EvidenceSnapshot(
        id=evidence.id,
        kind=evidence.kind,
        title="(restricted evidence)" if restricted else evidence.title,
        url=None if restricted else evidence.url,
        published_on=evidence.published_on,
        visibility=evidence.visibility,  # type: ignore[arg-type]
        verification_status=evidence.verification_status,
    )


MAGIC = {
    "application/pdf": b"%PDF-",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/jpeg": b"\xff\xd8\xff",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": b"PK\x03\x04",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": b"PK\x03\x04",
}


def _check_content(head: bytes, content_type: str) -> None:
    """The bytes must be what the declared type says (a renamed .exe is not a PDF)."""
    magic = MAGIC.get(content_type)
    if magic is not None and not head.startswith(magic):
        raise UnsupportedMediaType(f"the file's content is not {content_type}", field="body.file")
    if content_type.startswith("text/") and b"\x00" in head:
        raise UnsupportedMediaType("a text file cannot contain NUL bytes", field="body.file")


class StoredFile:
    """An upload written to the evidence folder under its SHA-256."""

    def __init__(self, sha256: str, name: str, content_type: str, size: int) -> None:
        self.sha256, self.name, self.content_type, self.size = sha256, name, content_type, size


async def store_upload(
    chunks: Any,
    *,
    filename: str,
    content_type: str,
    folder: Path,
    max_bytes: int,
    allowed_types: list[str],
) -> StoredFile:
    """Stream an upload to disk, refusing wrong types and sizes before anything is kept."""
    if content_type not in allowed_types:
        raise UnsupportedMediaType(
            f"files of type {content_type!r} are not accepted; "
            f"use one of {', '.join(allowed_types)}",
            field="body.file",
        )
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    first = True
    fd, temp_name = tempfile.mkstemp(dir=folder, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as handle:
            async for chunk in chunks:
                if first and chunk:
                    _check_content(chunk, content_type)
                    first = False
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(
                        f"the file is larger than {max_bytes} bytes", field="body.file"
                    )
                digest.update(chunk)
                handle.write(chunk)
        if size == 0:
            raise InvalidValue("the file is empty", field="body.file")
        sha = digest.hexdigest()
        os.replace(temp_name, folder / sha)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return StoredFile(sha, Path(filename).name[:300] or "upload", content_type, size)


def file_path(folder: Path, evidence: Evidence) -> Path | None:
    """Where an evidence item's file lies, if it has one."""
    return folder / evidence.file_sha256 if evidence.file_sha256 else None


async def load(session: AsyncSession, evidence_id: str) -> Evidence:
    """Evidence by id, or 404."""
    evidence = await session.get(Evidence, evidence_id)
    if evidence is None:
        raise EvidenceNotFound(f"no evidence with id {evidence_id!r}", field="path.evidence_id")
    return evidence


async def add(
    session: AsyncSession,
    rec: TrackedRecommendation,
    data: EvidenceIn,
    principal: Principal,
    stored: StoredFile | None = None,
    organisation: str | None = None,
) -> Evidence:
    """Add evidence; it may meet the recommendation's open report deadline."""
    submitter_org = organisation_for(principal, organisation)
    evidence = Evidence(
        id=uuid.uuid4().hex,
        recommendation_id=rec.id,
        kind=data.kind,
        title=data.title,
        url=str(data.url) if data.url else None,
        published_on=data.published_on,
        description=data.description,
        visibility=data.visibility,
        reprisal_risk=data.reprisal_risk,
        submitter_organisation=submitter_org,
        submitter_name=data.submitter_name,
        submitted_by_key=principal.key_id,
        file_sha256=stored.sha256 if stored else None,
        file_name=stored.name if stored else None,
        file_type=stored.content_type if stored else None,
        file_size=stored.size if stored else None,
        verification_status="unverified",
        created_at=utcnow(),
    )
    session.add(evidence)
    await session.flush()
    record_event(
        session,
        EvidenceAdded(recommendation=ref(rec), evidence=snapshot(evidence)),
        source=SOURCE,
        subject=rec.id,
    )
    await deadlines.meet_with_evidence(
        session, rec.id, submitter_org, evidence.id, evidence.created_at.date()
    )
    return evidence


async def verify(
    session: AsyncSession, evidence: Evidence, data: VerificationIn, principal: Principal
) -> Evidence:
    """Record who verified or disputed the evidence, when and why."""
    evidence.verification_status = data.status
    evidence.verified_by = principal.organisation or principal.name
    evidence.verified_at = utcnow()
    evidence.verification_reason = data.reason
    rec = await session.get(TrackedRecommendation, evidence.recommendation_id)
    assert rec is not None
    record_event(
        session,
        EvidenceVerified(
            recommendation=ref(rec),
            evidence=snapshot(evidence),
            verification=VerificationSnapshot(
                status=data.status,
                by=evidence.verified_by,
                at=evidence.verified_at,
                reason=data.reason,
            ),
        ),
        source=SOURCE,
        subject=rec.id,
    )
    return evidence
