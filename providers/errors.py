"""The error families every adapter maps its SDK's exceptions into, in one ``_map_error`` each.

    ProviderError
    ├── RateLimited(retry_after)   429: back off, then retry or fall back
    ├── Unavailable                5xx, timeout, connection: retry or fall back
    ├── Rejected                   safety/moderation: stop, tell the caller (no fallback by default)
    ├── InvalidForProvider         this provider can't take this request: next capable candidate
    ├── InvalidInput(param)        the caller's input is unusable (an image that does not decode): stop, 422
    └── AuthError                  bad or missing credentials: provider marked unhealthy
        └── QuotaExhausted         a quota no wait within the request refills: OpenAI's billing ran out (``429
                                   insufficient_quota``) or Gemini's per-day quota (``reset_after``): same, and an alert

The executor decides what to do from the family alone; the provider's own message and request id are
kept so the caller sees what the provider said.
"""

from __future__ import annotations


class ProviderError(Exception):
    retryable: bool = False
    code: str = "provider_error"

    def __init__(
        self, message: str, *, provider: str = "", request_id: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.request_id = request_id
        self.status = status


class RateLimited(ProviderError):
    retryable = True
    code = "provider_rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class Unavailable(ProviderError):
    """``ambiguous``: the request reached the provider and no answer came (a read timeout): it may
    have rendered and billed, so it is retried only where the route allows it."""

    retryable = True
    code = "provider_unavailable"

    def __init__(self, message: str, *, ambiguous: bool = False, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.ambiguous = ambiguous


class Rejected(ProviderError):
    code = "provider_rejected"


class InvalidForProvider(ProviderError):
    code = "invalid_for_provider"


class InvalidInput(ProviderError):
    """No provider could use this input (``param`` names it): trying another would fail the same way."""

    code = "invalid_image"

    def __init__(self, message: str, *, param: str, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.param = param


class AuthError(ProviderError):
    code = "provider_auth_failed"


class QuotaExhausted(AuthError):
    """A quota that no wait within the request refills: the account's credit or billing ran out (OpenAI's
    ``429 insufficient_quota``: ``reset_after`` None, until someone pays), or a per-day quota (Gemini's
    ``QuotaFailure``: ``reset_after`` seconds until it resets).

    It arrives as a 429 but retrying cannot help, so it is handled like bad credentials: the breaker opens
    (until the reset, when one is known), an operator is alerted, and the next candidate is tried. Never
    retried as :class:`RateLimited`."""

    code = "provider_quota_exhausted"

    def __init__(self, message: str, *, reset_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.reset_after = reset_after
