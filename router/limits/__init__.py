"""Limits shared by every edit: per-provider call slots and rate windows, and budget holds.

:class:`LocalLimits` holds them in this process (the default); :class:`RedisLimits` holds them in Redis
so that every replica shares them (``REDIS_URL``), and falls back to local limits while Redis is away.
The executor and the edit run see only the :class:`Limits` protocol.
"""

from router.limits.base import BudgetHold, Limits, ProviderLimit, limits_from_policy
from router.limits.local import LocalLimits

__all__ = ["BudgetHold", "Limits", "LocalLimits", "ProviderLimit", "limits_from_policy"]
