"""Tables. Every row belongs to a tenant; times are UTC epoch seconds (one type on SQLite and PostgreSQL).

tenants ─┬─ api_keys            (hashes only; an admin flag)
         ├─ sessions ─┬─ versions (a tree by parent_number; v0 is the uploaded source)
         │            │   └─ feedback (accepted / rejected / 1-5; the latest counts)
         │            └─ blobs    (which content-addressed files the session uses)
         ├─ attempts            (the ledger: one row per provider attempt; comparisons marked)
         ├─ idempotency         (key -> request hash and stored response)
         ├─ webhook_endpoints   (URLs called on every terminal edit) and webhook_secrets (one per tenant)
         └─ webhook_deliveries  (the outbox: one row per edit x URL, written with the terminal state)
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[float] = mapped_column(Float)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Admin scope: the whole policy (every tenant's budget and rules), its reload status, guarded /metrics."""
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, default=None)


class Blob(Base):
    """A session's use of a content-addressed file; the file goes when no row references it."""

    __tablename__ = "blobs"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    kind: Mapped[str] = mapped_column(String(20))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)


class EditSession(Base):
    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_tenant_created", "tenant_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float, default=None, index=True)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    next_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Version(Base):
    __tablename__ = "versions"
    __table_args__ = (
        UniqueConstraint("session_id", "number"),
        Index("ix_versions_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_versions_status_queued", "status", "queued_at"),
        Index("ix_versions_status_lease", "status", "lease_expires_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    parent_number: Mapped[int | None] = mapped_column(Integer, default=None)
    status: Mapped[str] = mapped_column(String(20))
    prompt: Mapped[str | None] = mapped_column(Text, default=None)
    chips: Mapped[list[Any]] = mapped_column(JSON, default=list)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source_sha: Mapped[str | None] = mapped_column(String(64), default=None)
    mask_sha: Mapped[str | None] = mapped_column(String(64), default=None)
    reference_shas: Mapped[list[Any]] = mapped_column(JSON, default=list)
    markup_sha: Mapped[str | None] = mapped_column(String(64), default=None)
    image_sha: Mapped[str | None] = mapped_column(String(64), default=None)
    provider: Mapped[str | None] = mapped_column(String(40), default=None)
    model: Mapped[str | None] = mapped_column(String(80), default=None)
    rule: Mapped[str | None] = mapped_column(String(80), default=None)
    chain_response_id: Mapped[str | None] = mapped_column(String(120), default=None)
    chain_note: Mapped[str | None] = mapped_column(String(200), default=None)
    retry_of: Mapped[int | None] = mapped_column(Integer, default=None)
    shadow_of: Mapped[int | None] = mapped_column(Integer, default=None)
    """Set on shadow-traffic versions: hidden from the caller's tree, recorded for experiment reports."""
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """The EditResponse (or the error body) as returned; what GET /v1/edits/{id} serves."""
    created_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float, default=None)
    queued_at: Mapped[float | None] = mapped_column(Float, default=None)
    """Set on edits accepted to run later (async): the queue is ordered by it."""
    started_at: Mapped[float | None] = mapped_column(Float, default=None)
    lease_owner: Mapped[str | None] = mapped_column(String(40), default=None)
    """The instance running this edit; with ``lease_expires_at``, what recovery checks (see router/lifecycle.py)."""
    lease_expires_at: Mapped[float | None] = mapped_column(Float, default=None)
    route_features: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=None)
    """What the policy saw when it routed this edit (``features``, ``experiment_key``), the first candidate it
    chose (``provider``) and what its cost estimates need (``image_sizes``, ``prompt_bytes``): what
    ``POST /v1/route/what-if`` replays. None: never routed (or routed before this was recorded)."""


class Attempt(Base):
    __tablename__ = "attempts"
    __table_args__ = (Index("ix_attempts_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    session_id: Mapped[str | None] = mapped_column(String(40), default=None)
    version_id: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    provider: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(80))
    rule: Mapped[str | None] = mapped_column(String(80), default=None)
    experiment: Mapped[str | None] = mapped_column(String(80), default=None, index=True)
    arm: Mapped[str | None] = mapped_column(String(80), default=None)
    estimated_usd: Mapped[float | None] = mapped_column(Float, default=None)
    actual_usd: Mapped[float | None] = mapped_column(Float, default=None)
    provider_ms: Mapped[float] = mapped_column(Float)
    total_ms: Mapped[float | None] = mapped_column(Float, default=None)
    outcome: Mapped[str] = mapped_column(String(40))
    error_code: Mapped[str | None] = mapped_column(String(60), default=None)
    comparison: Mapped[bool] = mapped_column(Boolean, default=False)
    usage: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float)


class Feedback(Base):
    """A caller's verdict on an edit; the latest one per version counts."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    version_id: Mapped[str] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"), index=True)
    verdict: Mapped[str | None] = mapped_column(String(20), default=None)
    rating: Mapped[int | None] = mapped_column(Integer, default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[float] = mapped_column(Float)


class Idempotency(Base):
    __tablename__ = "idempotency"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[str | None] = mapped_column(String(40), default=None)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[float] = mapped_column(Float)


class WebhookEndpoint(Base):
    """A URL a tenant registered (``editgate webhooks add``): called on each of its edits' terminal states."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)


class WebhookSecret(Base):
    """The tenant's signing secret (``whsec_`` + base64), kept as the signer needs it: HMAC needs the key itself."""

    __tablename__ = "webhook_secrets"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    secret: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[float] = mapped_column(Float)


class WebhookDelivery(Base):
    """The outbox: one message to one URL, retried under a lease until delivered or out of time.
    ``payload`` is the exact body that is signed; ``webhook_id`` stays the same on every attempt."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    version_id: Mapped[str] = mapped_column(String(40), index=True)
    endpoint_id: Mapped[str | None] = mapped_column(String(40), default=None)
    url: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[str] = mapped_column(Text)
    webhook_id: Mapped[str] = mapped_column(String(40))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20))
    """pending (due at ``next_attempt_at``), delivered, or failed (retries ran out)."""
    next_attempt_at: Mapped[float | None] = mapped_column(Float, default=None)
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(String(300), default=None)
    lease_owner: Mapped[str | None] = mapped_column(String(40), default=None)
    lease_until: Mapped[float | None] = mapped_column(Float, default=None)
    history: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """Each attempt: when, status code, error, how long it took, when the next one is due."""
    created_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float, default=None)
