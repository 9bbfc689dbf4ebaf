"""The app, assembled in one place: settings -> gateway parts -> Litestar with routes and handlers."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable

import structlog
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide

from policies import Policy
from providers.decode_budget import DECODE_BUDGET
from providers.pricing import load_prices
from router.answers import AnswerTurns
from router.api.compare import compare_providers, experiment_report, feedback
from router.api.console import CONSOLE_HANDLERS
from router.api.docs import docs_assets, openapi_config
from router.api.edit_events import get_edit_events
from router.api.edits import cancel_edit, create_edit, get_edit
from router.api.files import get_file
from router.api.listing import LISTING_HANDLERS
from router.api.meta import chips, healthz, metrics, readyz
from router.api.openai_compat import openai_images_edit, openai_images_generate
from router.api.routing import explain_route, get_policy
from router.api.sessions import SESSION_HANDLERS
from router.api.signed_urls import signed_urls_middleware
from router.api.spend import get_spend
from router.api.webhooks import edit_deliveries
from router.api.what_if import route_what_if
from router.auth import provide_caller, provide_tenant
from router.blobs import open_blob_store
from router.body_deadline import body_deadline
from router.breaker import Breakers
from router.deferred import DeferredScores
from router.errors import EXCEPTION_HANDLERS
from router.events import EventBus
from router.executor import Resources
from router.lifecycle import Lifecycle
from router.limits import Limits, LocalLimits
from router.links import LinkSigner, local_keys, parse_keys
from router.logging import request_id_middleware
from router.metrics import Metrics
from router.policy_source import PolicyReloader, read_policy
from router.provenance import load_config
from router.queue import drain, lease_keeper, queue_worker, recover_once, recovery_loop
from router.registry import ProviderSet, build_providers
from router.service import Gateway
from router.sessions import sweeper
from router.settings import Settings
from router.storage.db import database_url, make_engine, make_probe_engine, migrate
from router.storage.store import DEV_TENANT, Store, new_id
from router.tracing import configure_tracing, tracing_middleware
from router.webhooks import enqueue
from router.webhooks.delivery import DeliveryWorker
from router.workers import ImageWorkers

log = structlog.get_logger("editgate.app")
RELAY_FLUSH_S = 5.0
"""How long shutdown waits, after the drain, for the last events to reach Redis (each send times out in 2 s)."""


def build_gateway(settings: Settings) -> Gateway:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    workers = ImageWorkers(settings.image_workers)
    DECODE_BUDGET.resize(settings.decode_budget_megapixels)
    policy = read_policy(settings.policy_file)
    url = database_url(settings.database_url, settings.data_dir)
    store = Store(make_engine(url), probe_engine=make_probe_engine(url))
    gateway = Gateway(
        settings=settings,
        policy=policy,
        providers=build_providers(settings, policy, workers.run),
        blobs=open_blob_store(settings.blob_url, settings.data_dir),
        store=store,
        lifecycle=Lifecycle(store, owner=new_id("inst"), lease_s=settings.lease_s),
        workers=workers,
        resources=Resources(Breakers(policy.breaker)),
        prices=load_prices(settings.pricing_file),
        metrics=Metrics(settings.metrics_tenant_labels),
        forced_provider=settings.image_edit_provider,
        events=EventBus(settings.events_retain_s),
    )
    gateway.links = LinkSigner(
        parse_keys(settings.link_keys) if settings.link_keys else local_keys(settings.data_dir),
        settings.link_ttl_s,
        settings.link_ttl_by_tenant,
    )
    gateway.resources.limits = shared_limits(settings, gateway.metrics)
    if settings.redis_url:  # events readable from every replica
        from router.events_relay import EventRelay  # redis-py is imported only when it is used

        gateway.events.relay = EventRelay(gateway.resources.limits.client, settings.redis_prefix,  # type: ignore[attr-defined]
                                          settings.events_retain_s)  # fmt: skip
    gateway.scores = DeferredScores(settings.deferred_scores, workers.run, gateway.lifecycle.scored)
    gateway.answers = AnswerTurns(settings.answers_at_once)
    gateway.set_policy(policy)
    gateway.lifecycle.on_terminal.append(enqueue)  # webhook messages commit with the state they announce
    return gateway


def shared_limits(settings: Settings, metrics: Metrics) -> Limits:
    """Redis-held limits when ``REDIS_URL`` is set (their reach shown on ``editgate_dependency_up``), else local."""
    if not settings.redis_url:
        return LocalLimits(settle_grace_s=settings.budget_settle_grace_s)
    from router.limits.shared import RedisLimits  # redis-py is imported only when it is used

    up = metrics.dependency_up.labels("redis")
    up.set(1)
    return RedisLimits(settings.redis_url, settings.redis_prefix, lease_s=settings.redis_lease_s,
                       poll_s=settings.redis_poll_s, settle_grace_s=settings.budget_settle_grace_s,
                       on_state=lambda ok: up.set(1 if ok else 0))  # fmt: skip


def _apply_policy(gateway: Gateway) -> Callable[[Policy], None]:
    def apply(policy: Policy) -> None:
        replaced = gateway.providers
        gateway.providers = build_providers(gateway.settings, policy, gateway.workers.run)
        gateway.set_policy(policy)
        if isinstance(replaced, ProviderSet):  # its clients close once the calls still using them end
            gateway.spawn(replaced.retire(), "close replaced providers")

    return apply


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings()
    configure_tracing()
    load_config(settings.c2pa_cert, settings.c2pa_key, settings.c2pa_verify)  # a certificate that cannot sign: no start
    gateway = build_gateway(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await migrate(gateway.store.engine)
        gateway.dev_tenant = await gateway.store.ensure_tenant(DEV_TENANT)
        keys = await gateway.store.keys_ever_created()
        log.info(
            "gateway_ready",
            data_dir=str(settings.data_dir.resolve()),
            database=gateway.store.engine.dialect.name,
            providers=sorted(gateway.providers),
            policy_version=gateway.policy.version,
            forced_provider=settings.image_edit_provider,
            retention_days=settings.retention_days,
        )
        if not keys:
            log.warning(
                "no_api_keys",
                note="running as the single development tenant 'dev'; the first `editgate keys create` enforces auth",
            )
        if settings.redis_url and not await gateway.resources.limits.check():
            log.warning("redis_unreachable_at_start", note="serving with this process's own limits until it answers")
        if recovered := await recover_once(gateway):
            log.warning("recovered_interrupted_edits", edits=len(recovered))
        reloader = PolicyReloader(settings.policy_file, _apply_policy(gateway))
        app.state.reloader = reloader
        keeper = asyncio.create_task(lease_keeper(gateway))
        tasks = [
            asyncio.create_task(sweeper(gateway)),
            asyncio.create_task(reloader.watch()),
            asyncio.create_task(gateway.metrics.watch_loop_lag()),
            asyncio.create_task(
                DeliveryWorker(gateway.store, settings.webhooks, retention_s=settings.retention_days * 86400).run()
            ),
            asyncio.create_task(queue_worker(gateway)),
            asyncio.create_task(recovery_loop(gateway)),
        ]
        relay = gateway.events.relay
        relaying = asyncio.create_task(relay.run()) if relay is not None else None
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):  # not the main thread (tests)
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reloader.reload)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await drain(gateway, app.state.get("drain_started"))
            if relay is not None and relaying is not None:  # what the drained edits published, to Redis
                await relay.flush(RELAY_FLUSH_S)
                relaying.cancel()
                tasks.append(relaying)
            keeper.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            gateway.metrics.close()  # the webhook worker gives its leases back
            if isinstance(gateway.providers, ProviderSet):
                await gateway.providers.retire()
            await gateway.resources.limits.close()
            await gateway.store.dispose()

    return Litestar(
        route_handlers=[
            create_edit,
            get_edit,
            edit_deliveries,
            cancel_edit,
            get_edit_events,
            get_file,
            healthz,
            readyz,
            chips,
            metrics,
            compare_providers,
            openai_images_edit,
            openai_images_generate,
            feedback,
            experiment_report,
            explain_route,
            get_policy,
            route_what_if,
            get_spend,
            *SESSION_HANDLERS,
            *LISTING_HANDLERS,
            docs_assets(),
            *CONSOLE_HANDLERS,
        ],
        dependencies={"tenant": Provide(provide_tenant), "caller": Provide(provide_caller)},
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        middleware=[
            tracing_middleware,
            request_id_middleware,
            body_deadline(settings.body_read_timeout_s),
            signed_urls_middleware,
        ],
        lifespan=[lifespan],
        request_max_body_size=settings.limits.max_request_bytes,
        openapi_config=openapi_config(version="0.1.0"),
        state=State({"gateway": gateway}),
        logging_config=None,
        debug=False,
    )
