"""``POST /v1/route/what-if`` behind the handler: read the candidate policy and the window, load the
recorded edits and ledger, price each edit on the candidate's providers at today's prices, and hand
everything to the pure replay (:mod:`policies.what_if`). No provider is called and nothing is stored.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import yaml
from pydantic import ValidationError

from policies import Capabilities, Features, Policy
from policies.model import PolicyError, parse_policy
from policies.what_if import Observed, PastEdit, Tally, replay_all
from providers.pricing import PriceTable, UsageInputs, estimate_usd
from router.errors import ApiError
from router.storage.replay import LedgerCall, RecordedEdit, count_recorded, ledger_calls, recorded_edits
from router.storage.store import Store

MAX_POLICY_BYTES = 64 * 1024
MAX_POLICY_NODES = 50_000
"""YAML aliases let a small text stand for a huge (or endless) tree: no policy expands past this."""
MAX_POLICY_DEPTH = 32
"""A policy nests 5 levels or so; ruamel's recursive parser takes seconds on a few hundred."""
MAX_EDITS = 50_000
"""A replay's time grows with its edits (tens of microseconds each); a wider window is refused with what
to narrow."""
PAGE = 2000
MAX_LEDGER_CALLS = 100_000
"""The newest calls in the window that latency and failure rates are observed over."""
MAX_WINDOW_DAYS = 3660
_RELATIVE = re.compile(r"^\s*(\d{1,7})\s*([dh])\s*$")


def parse_since(text: str, now: float) -> float:
    """``Nd``, ``Nh`` or an ISO-8601 time with an offset, as epoch seconds before ``now``."""
    problem = ("since must be Nd or Nh (e.g. 7d, 12h) or an ISO-8601 time with an offset, such as "
               "2026-11-01T00:00:00Z")  # fmt: skip
    if len(text) > 64:
        raise ApiError(422, "invalid_parameter", f"{problem}; this one is {len(text)} characters long.", "since")
    if (m := _RELATIVE.match(text)) is not None:
        seconds = int(m.group(1)) * (86400 if m.group(2) == "d" else 3600)
        if not 0 < seconds <= MAX_WINDOW_DAYS * 86400:
            raise ApiError(422, "invalid_parameter", f"since: the window must be 1h to {MAX_WINDOW_DAYS}d.", "since")
        return now - seconds
    try:
        moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise ApiError(422, "invalid_parameter", f"{problem}.", "since") from None
    if moment.tzinfo is None:
        raise ApiError(422, "invalid_parameter", f"{problem}: this one has no offset.", "since")
    if moment.timestamp() >= now:
        raise ApiError(422, "invalid_parameter", "since is in the future: nothing has happened since then.", "since")
    return max(moment.timestamp(), now - MAX_WINDOW_DAYS * 86400)


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _invalid(message: str) -> ApiError:
    return ApiError(422, "invalid_policy", message, "policy")


def _check_shape(text: str) -> None:
    """Refuse, before the (pure Python, recursive) policy parser sees it, YAML nested deeper than
    :data:`MAX_POLICY_DEPTH` or expanding past :data:`MAX_POLICY_NODES` nodes through aliases (an alias
    bomb, a self-referencing alias). libyaml's event stream measures both without recursion."""
    sizes: dict[str, int] = {}
    open_nodes: list[tuple[str | None, int]] = []
    nodes = 0
    try:
        for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if isinstance(event, yaml.ScalarEvent):
                nodes += 1
                if event.anchor:
                    sizes[event.anchor] = 1
            elif isinstance(event, yaml.CollectionStartEvent):
                nodes += 1
                open_nodes.append((event.anchor, nodes))
                if len(open_nodes) > MAX_POLICY_DEPTH:
                    raise _invalid(f"{_at(event)}the policy nests deeper than {MAX_POLICY_DEPTH} levels.")
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, first = open_nodes.pop()
                if anchor:
                    sizes[anchor] = nodes - first + 1
            elif isinstance(event, yaml.AliasEvent):
                if event.anchor not in sizes:
                    raise _invalid(f"{_at(event)}the alias *{event.anchor} refers to a node that contains it.")
                nodes += sizes[event.anchor]
            if nodes > MAX_POLICY_NODES:
                raise _invalid(f"{_at(event)}the policy expands to more than {MAX_POLICY_NODES} YAML nodes.")
    except yaml.MarkedYAMLError as exc:
        raise _invalid(f"{_at(exc)}{exc.problem}") from None
    except yaml.YAMLError as exc:
        raise _invalid(str(exc)) from None


def _at(marked: Any) -> str:
    mark = getattr(marked, "start_mark", None) or getattr(marked, "problem_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""


def read_candidate(text: str) -> Policy:
    """The candidate policy, validated as a policy file is; every problem is a 422 ``invalid_policy`` that
    names its line and column."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
        raise _invalid(f"the policy is larger than {MAX_POLICY_BYTES // 1024} KiB.")
    if not text.strip():
        raise _invalid("the policy is empty: send the candidate policy file's YAML text.")
    try:
        _check_shape(text)
        return parse_policy(text)
    except PolicyError as exc:
        raise _invalid("; ".join(exc.problems)) from None
    except RecursionError:
        raise _invalid("the policy's YAML is nested too deeply.") from None
    except UnicodeError:
        raise _invalid("the policy is not valid text.") from None


class Pricer:
    """Today's estimate of an edit on each provider, with the candidate policy's models and options.

    A prompt counts in an estimate only through its token count, one per 4 UTF-8 bytes
    (:func:`providers.catalog.text_tokens`): the version keeps the prompt's length, and the estimate
    prices an ASCII text of that length (``tests/test_what_if_arithmetic.py`` holds this equal to pricing
    the prompt itself). Estimates are memoized on what they depend on, so edits of one shape share one."""

    def __init__(self, policy: Policy, prices: PriceTable, names: Iterable[str]) -> None:
        self.policy, self.prices = policy, prices
        self.names = [name for name in names if name in policy.providers]
        self._known: dict[tuple[Any, ...], dict[str, float | None]] = {}

    def __call__(self, recorded: Mapping[str, Any], f: Features) -> dict[str, float | None]:
        sizes = tuple((int(w), int(h)) for w, h in recorded.get("image_sizes") or ())
        key = (int(recorded.get("prompt_bytes") or 0), sizes, f.out_w, f.out_h, f.quality, f.n, f.has_mask)
        if (found := self._known.get(key)) is None:
            usage = UsageInputs("x" * key[0], sizes, f.out_w, f.out_h, f.quality, f.n, f.has_mask)
            found = self._known[key] = {name: self._estimate(name, usage) for name in self.names}
        return found

    def _estimate(self, name: str, usage: UsageInputs) -> float | None:
        settings = self.policy.providers[name]
        return estimate_usd(name, settings.model, settings.options, usage, self.prices)


def past_edit(row: RecordedEdit, pricer: Pricer) -> PastEdit | None:
    """A stored edit as the replay takes it; None when what was recorded cannot be read by this version."""
    recorded = row.route_features
    try:
        features = Features.model_validate(recorded.get("features"))
        return PastEdit(
            features=features,
            rule=row.rule or "",
            provider=str(recorded["provider"]),
            before_usd=row.billed_usd,
            before_estimated=row.unpriced_calls > 0,
            estimates=pricer(recorded, features),
            keys={"tenant": row.tenant, "session": row.session_id, "key": recorded.get("experiment_key")},
        )
    except (ValidationError, KeyError, TypeError, ValueError):
        return None


def observations(calls: Iterable[LedgerCall]) -> dict[str, Observed]:
    """Per provider: calls, failures (every call that did not return an image), latencies and cost ratios."""
    by: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"ms": [], "ratios": [], "n": [], "failed": []})
    for call in calls:
        seen = by[call.provider]
        seen["n"].append(1)
        if call.outcome != "ok":
            seen["failed"].append(1)
            continue
        seen["ms"].append(call.provider_ms)
        if call.actual_usd is not None and call.estimated_usd and math.isfinite(call.actual_usd):
            seen["ratios"].append(call.actual_usd / call.estimated_usd)
    return {
        name: Observed(calls=len(s["n"]), failures=len(s["failed"]), latencies_ms=s["ms"], ratios=s["ratios"])
        for name, s in by.items()
    }


async def what_if(store: Store, candidate: Policy, capabilities: Mapping[str, Capabilities], prices: PriceTable,
                  tenant: str | None, since: float, until: float, forced_provider: str | None,
                  run: Any) -> dict[str, Any]:  # fmt: skip
    """The report. ``tenant=None``: every tenant's edits. ``run`` executes the CPU work off the loop; edits are
    read and replayed a page at a time, so memory holds one page and the running totals."""
    if await count_recorded(store, tenant, since, until) > MAX_EDITS:
        raise ApiError(422, "window_too_large", f"More than {MAX_EDITS} edits in this window: replay a shorter "
                       "one (since).", "since")  # fmt: skip
    pricer, tally, skipped = Pricer(candidate, prices, capabilities), Tally(), 0
    after: tuple[float, str] | None = None
    while page := await recorded_edits(store, tenant, since, until, PAGE, after):

        def work(rows: list[RecordedEdit] = page) -> int:
            edits = [e for row in rows if (e := past_edit(row, pricer)) is not None]
            for replayed in replay_all(edits, candidate, capabilities, forced_provider):
                tally.add(replayed)
            return len(rows) - len(edits)

        skipped += await run(work)
        after = (page[-1].created_at, page[-1].id)
    calls = await ledger_calls(store, tenant, since, until, MAX_LEDGER_CALLS)
    numbers = tally.report(candidate, await run(lambda: observations(calls)))
    if skipped:
        numbers["estimates"].append(f"{skipped} recorded edit(s) could not be replayed: what was recorded with them "
                                    "is not readable by this version.")  # fmt: skip
    if forced_provider:
        numbers["estimates"].append(f"IMAGE_EDIT_PROVIDER={forced_provider} is set on this gateway: it overrides "
                                    "the candidate's rules here, as it would for live traffic.")  # fmt: skip
    return {
        "object": "route.what_if",
        "window": {"since": iso(since), "until": iso(until)},
        "policy": {"version": candidate.version, "digest": candidate.digest},
        **numbers,
    }
