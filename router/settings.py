"""Service settings, read once from the environment (prefix ``EDITGATE_``) and passed down.

Every limit a request is checked against lives here so ops can tune intake without a release.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_workers() -> int:
    return max(1, os.cpu_count() or 1)


class Limits(BaseSettings):
    """Intake limits; all are checked before any pixel is decoded."""

    model_config = SettingsConfigDict(env_prefix="EDITGATE_LIMIT_", extra="forbid")

    max_request_bytes: int = Field(60 * 1024 * 1024, description="Whole request body, enforced while streaming.")
    max_file_bytes: int = Field(50 * 1024 * 1024, description="One uploaded image.")
    max_mask_bytes: int = Field(8 * 1024 * 1024, description="The mask image.")
    max_edge: int = Field(8192, description="Longest edge of any input image, in pixels.")
    max_megapixels: float = Field(
        40.0, description="Decoded size of any input image (decompression bombs), output or outpaint canvas."
    )
    max_output_edge: int = Field(8192, description="Longest edge of a requested output or outpaint canvas.")
    max_prompt_chars: int = Field(32_000, description="Prompt length in characters.")
    max_references: int = Field(8, description="Reference images per request.")
    max_n: int = Field(10, description="Images per request.")

    def too_large(self, width: int, height: int, max_edge: int) -> bool:
        """Inputs and outputs share the megapixel bound (memory) but have their own edge limits."""
        return max(width, height) > max_edge or width * height > self.max_megapixels * 1e6


class WebhookSettings(BaseSettings):
    """Webhook delivery: who may be called, how long one call may take, how long retries go on."""

    model_config = SettingsConfigDict(env_prefix="EDITGATE_WEBHOOK_", extra="forbid")

    allow_private: bool = Field(
        False,
        description="Allow URLs that resolve to loopback, private, link-local or CGNAT addresses (never the "
        "cloud metadata ones). Off: such URLs are refused at request time and again before each delivery.",
    )
    connect_timeout_s: float = Field(5.0, gt=0, description="Connecting to the receiver.")
    timeout_s: float = Field(15.0, gt=0, description="One delivery, whole (connect, send, answer).")
    max_response_bytes: int = Field(16 * 1024, ge=0, description="At most this much of an answer is read.")
    retry_base_s: float = Field(5.0, gt=0, description="First retry's backoff ceiling; doubles per attempt.")
    retry_cap_s: float = Field(6 * 3600.0, gt=0, description="Largest backoff ceiling (full jitter below it).")
    retry_window_s: float = Field(24 * 3600.0, gt=0, description="No attempt later than this after the edit ended.")
    poll_s: float = Field(1.0, gt=0, description="How often the worker looks for due deliveries.")
    lease_s: float = Field(60.0, gt=0, description="A claimed delivery another process may take over after this.")
    concurrency: int = Field(8, ge=1, description="Deliveries in flight at once, per process.")


class Settings(BaseSettings):
    """Top-level settings. ``EDITGATE_DATA_DIR`` etc.; see the README's configuration reference."""

    model_config = SettingsConfigDict(env_prefix="EDITGATE_", extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("./editgate-data")
    public_base_url: str | None = Field(
        None, description="Base URL used in returned file links; defaults to the request's own host."
    )
    image_workers: int = Field(default_factory=_default_workers, description="Threads for image work.")
    decode_budget_megapixels: float = Field(
        100.0, gt=0, description="Pixels that concurrent decodes may hold at once, process-wide (memory bound)."
    )
    answers_at_once: int = Field(
        8, ge=1, description="Provider answers read, decoded and stored at once (memory bound); the rest wait unread."
    )
    request_timeout_s: float = Field(600.0, description="Overall deadline of one edit, all attempts included.")
    body_read_timeout_s: float = Field(
        30.0, gt=0, description="A client gets this long (waiting time, in total) to send its request body, else 408."
    )
    log_level: str = "info"
    metrics_auth: bool = Field(False, description="Serve /metrics only to admin keys (`editgate keys create --admin`).")
    metrics_tenant_labels: bool = Field(False, description="Add a tenant label to request and cost metrics.")
    log_content: bool = Field(False, description="Log prompts (never image bytes). Off by default for privacy.")
    feather_px: int = Field(3, description="Feather width of mask-lock compositing, in pixels.")
    deferred_scores: int = Field(
        2,
        ge=0,
        description="Preservation scores computed at once after the answer (drop-in edits); beyond that, skipped.",
    )
    policy_file: Path | None = Field(None, description="Routing policy; defaults to the packaged default.yaml.")
    pricing_file: Path | None = Field(None, description="Price table; defaults to the packaged pricing.yaml.")
    image_edit_provider: str | None = Field(
        None,
        validation_alias="IMAGE_EDIT_PROVIDER",
        description="'auto' or a provider name: forces that provider over the policy's rules.",
    )
    openai_api_key: str | None = Field(None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(None, validation_alias="OPENAI_BASE_URL")
    gemini_api_key: str | None = Field(None, validation_alias="GEMINI_API_KEY")
    gemini_base_url: str | None = Field(None, validation_alias="GEMINI_BASE_URL")
    emulator: str = Field(
        "auto", description="'auto': start the provider emulator when no provider key is set; 'on'; 'off'."
    )
    emulator_port: int = Field(0, description="Port of the built-in emulator (0: any free port).")
    database_url: str | None = Field(
        None, validation_alias="DATABASE_URL", description="PostgreSQL URL; default SQLite in the data dir."
    )
    blob_url: str | None = Field(
        None,
        description="Where images are stored: unset = local disk under the data dir; s3://bucket/prefix = an "
        "S3-compatible object store (endpoint and credentials from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY, AWS_REGION; AWS_ALLOW_HTTP=true for a plain-HTTP endpoint).",
    )
    link_keys: str | None = Field(
        None,
        description="Keys of signed file links, 'kid:secret[,kid:secret…]': the first signs, all verify (rotation). "
        "Unset: a random key kept in the data dir (replicas on separate machines must set this).",
    )
    link_ttl_s: float = Field(3600.0, gt=0, description="How long a signed file link works.")
    link_ttl_by_tenant: dict[str, float] = Field(
        default_factory=dict, description='Per-tenant link lifetimes, JSON: {"acme": 600}.'
    )
    retention_days: float = Field(30.0, description="Sessions, their images and history expire after this.")
    sweep_interval_s: float = Field(300.0, description="How often expired sessions are removed.")
    lease_s: float = Field(
        30.0,
        gt=0,
        description="Lease on a running edit; renewed every third of it while the provider call is alive. "
        "An edit whose lease expires (its instance died) becomes `interrupted`.",
    )
    recovery_interval_s: float = Field(10.0, gt=0, description="How often expired leases are looked for.")
    drain_s: float = Field(
        120.0, ge=0, description="On SIGTERM, how long in-flight edits may finish before they are marked interrupted."
    )
    queue_concurrency: int = Field(8, ge=1, description="Queued (async) edits this instance runs at once.")
    queue_poll_s: float = Field(1.0, gt=0, description="How often the queue is checked for edits other replicas took.")
    events_heartbeat_s: float = Field(15.0, gt=0, description="An idle event stream gets a comment this often.")
    events_retain_s: float = Field(
        300.0, ge=0, description="An edit's live events stay in memory this long after it ends (then: from storage)."
    )
    c2pa_cert: Path | None = Field(
        None,
        description="PEM certificate chain (leaf first) editgate signs its own C2PA manifest with, on results it had "
        "to re-encode; set with c2pa_key. Unset: re-encoded results are reported `lost` and left unsigned.",
    )
    c2pa_key: Path | None = Field(None, description="The PEM private key of c2pa_cert (EC, RSA or Ed25519).")
    c2pa_verify: bool = Field(
        False,
        description="Verify the provider's C2PA manifest (signature, hash binding) on every result: `validation` "
        "then says Valid/Trusted/Invalid; costs a hash of the whole image. Off: `not_checked`.",
    )
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "EDITGATE_REDIS_URL", "redis_url"),
        description="Redis holding what replicas share (provider slots and rates, budget holds, live events); "
        "unset: each process holds its own.",
    )
    redis_prefix: str = Field("editgate", description="Prefix of every Redis key (one per deployment).")
    redis_lease_s: float = Field(
        30.0, gt=0, description="A slot or budget hold of a replica that stopped renewing it frees after this."
    )
    redis_poll_s: float = Field(0.02, gt=0, description="How often a call waiting for a shared slot asks again.")
    budget_settle_grace_s: float = Field(
        30.0,
        gt=0,
        description="A settled budget hold still counts this long, until every replica reads its ledger row.",
    )
    limits: Limits = Field(default_factory=Limits)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)

    def has_provider_keys(self) -> bool:
        return bool(self.openai_api_key or self.gemini_api_key)
