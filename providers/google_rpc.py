"""Reading a Google API error's ``details[]``: how long to wait and which quota ran out.

Gemini's 429 carries no ``Retry-After`` header. The wait is ``google.rpc.RetryInfo.retryDelay`` (a
protobuf Duration in JSON: ``"38s"``, ``"0.5s"``), and ``google.rpc.QuotaFailure.violations[]`` name the
quota (``quotaId`` such as ``GenerateRequestsPerMinutePerProjectPerModel`` or ``...PerDay...``). A
per-minute quota refills on its own; a per-day one refills when the day ends where Google counts it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


@dataclass(frozen=True, slots=True)
class QuotaReport:
    retry_delay_s: float | None
    """``RetryInfo.retryDelay`` in seconds (None when the error had none)."""
    quota_ids: tuple[str, ...]
    """``QuotaFailure.violations[].quotaId``, in order."""


def error_details(body: Any) -> list[dict[str, Any]]:
    """The ``details`` list of a Google error body (``{"error": {...}}`` or the inner object)."""
    if not isinstance(body, dict):
        return []
    inner = body.get("error") if isinstance(body.get("error"), dict) else body
    details = inner.get("details")
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def parse_duration(value: Any) -> float | None:
    """A protobuf Duration in its JSON form (``"38s"``, ``"1.5s"``); None if it is not one."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    return float(match.group(1)) if match else None


def quota_report(body: Any) -> QuotaReport:
    delay: float | None = None
    ids: list[str] = []
    for detail in error_details(body):
        kind = detail.get("@type")
        if kind == RETRY_INFO and delay is None:
            delay = parse_duration(detail.get("retryDelay"))
        elif kind == QUOTA_FAILURE:
            for v in detail.get("violations") or []:
                if isinstance(v, dict) and isinstance(v.get("quotaId"), str):
                    ids.append(v["quotaId"])
    return QuotaReport(delay, tuple(ids))


def per_day(quota_ids: Iterable[str], markers: Iterable[str]) -> str | None:
    """The first quota id that refills only once a day (None: every exhausted quota refills sooner)."""
    marks = tuple(markers)
    return next((q for q in quota_ids if any(m in q for m in marks)), None)


def seconds_until_day_ends(now: float, timezone: str) -> float:
    """Seconds from ``now`` (epoch) to the next midnight in ``timezone``, where a per-day quota resets."""
    zone = ZoneInfo(timezone)
    local = datetime.fromtimestamp(now, zone)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), zone)
    return max(0.0, midnight.timestamp() - now)
