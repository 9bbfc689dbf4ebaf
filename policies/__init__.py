"""Routing policy: pure functions from request features to a route decision. No I/O lives here."""

from policies.capabilities import Capabilities, missing_capabilities
from policies.engine import decide, shadow_for
from policies.features import Features
from policies.model import Candidate, DroppedCandidate, Policy, RouteDecision, RuleTrace, parse_policy

__all__ = [
    "Candidate",
    "Capabilities",
    "DroppedCandidate",
    "Features",
    "Policy",
    "RouteDecision",
    "RuleTrace",
    "decide",
    "missing_capabilities",
    "parse_policy",
    "shadow_for",
]
