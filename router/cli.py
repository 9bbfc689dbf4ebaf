"""``editgate``: run the service, or send an edit to a running one."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx
import structlog

from router.cli_progress import api_error, follow
from router.settings import Settings
from router.storage.store import Store

T = TypeVar("T")


@click.group()
def main() -> None:
    """editgate: one HTTP API in front of many AI image-edit providers."""


def _default_workers(settings: Settings) -> int:
    """All cores on PostgreSQL; one on SQLite (one writer at a time: more processes only queue on its lock)."""
    from router.storage.db import database_url

    url = database_url(settings.database_url, settings.data_dir)
    return max(1, os.cpu_count() or 1) if url.startswith("postgresql") else 1


@main.command()
@click.option("--host", envvar="EDITGATE_HOST", default=None, help="Bind address [127.0.0.1].")
@click.option("--port", envvar="EDITGATE_PORT", type=int, default=None, help="Port [8080].")
@click.option("--data-dir", envvar="EDITGATE_DATA_DIR", type=click.Path(path_type=Path), default=None)
@click.option("--workers", envvar="EDITGATE_WORKERS", type=click.IntRange(min=1), default=None,
              help="Worker processes [the number of cores on PostgreSQL, 1 on SQLite].")  # fmt: skip
def serve(host: str | None, port: int | None, data_dir: Path | None, workers: int | None) -> None:
    """Serve the API with embedded defaults (local disk, local provider); no configuration needed.

    With no provider key set, the provider emulator starts beside the gateway and the cloud adapters
    talk to it: everything works offline, and every emulated result says ``emulated: true``.
    """
    from providers.emulator import create_emulator_app
    from router.allocator import pin_mmap_threshold
    from router.logging import configure_logging
    from router.serving import prepare_multiprocess_metrics, run_single, run_workers
    from router.threaded import serve_in_thread

    overrides: dict[str, Any] = {
        k: v for k, v in {"host": host, "port": port, "data_dir": data_dir}.items() if v is not None
    }
    settings = Settings(**overrides)
    configure_logging(settings.log_level)
    pin_mmap_threshold()
    env = {f"EDITGATE_{k.upper()}": str(v) for k, v in overrides.items()}
    with ExitStack() as stack:
        if settings.emulator == "on" or (settings.emulator == "auto" and not settings.has_provider_keys()):
            url = stack.enter_context(serve_in_thread(create_emulator_app(), port=settings.emulator_port))
            emulated = {"openai_api_key": "emulator", "openai_base_url": f"{url}/v1",
                        "gemini_api_key": "emulator", "gemini_base_url": url}  # fmt: skip
            settings = settings.model_copy(update=emulated)
            env |= {"OPENAI_API_KEY": "emulator", "OPENAI_BASE_URL": f"{url}/v1", "GEMINI_API_KEY": "emulator",
                    "GEMINI_BASE_URL": url, "EDITGATE_EMULATOR": "off"}  # fmt: skip
            click.secho(
                f"\n*** No provider keys set: openai-images, openai-responses and gemini are served by the "
                f"built-in EMULATOR at {url} (a test double, not the real providers). Results say "
                f"'emulated: true'. Set OPENAI_API_KEY / GEMINI_API_KEY for the real ones. ***\n",
                fg="yellow",
                bold=True,
                err=True,
            )
            structlog.get_logger("editgate.cli").warning("emulator_serving_cloud_providers", url=url)
        count = workers or _default_workers(settings)
        if count == 1:
            from router.app import create_app

            run_single(create_app(settings), settings.host, settings.port, settings.drain_s)
            return
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        prepare_multiprocess_metrics(settings.data_dir)
        click.echo(f"editgate: {count} worker processes on http://{settings.host}:{settings.port}", err=True)
        run_workers(env, settings.host, settings.port, count, settings.drain_s)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8700, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fault and latency streams.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON or YAML EmulatorConfig: per-endpoint latency and fault rates.")  # fmt: skip
def emulate(host: str, port: int, seed: int, config_file: Path | None) -> None:
    """Run the provider emulator alone (OpenAI Images, Responses, Gemini) for tests and demos."""
    import uvicorn
    import yaml

    from providers.emulator import EmulatorConfig, create_emulator_app
    from router.logging import configure_logging

    configure_logging("info")
    data = yaml.safe_load(config_file.read_text()) if config_file else {}
    config = EmulatorConfig.model_validate({"seed": seed, **(data or {})})
    click.echo(f"editgate emulator (a test double) on http://{host}:{port}", err=True)
    uvicorn.run(create_emulator_app(config), host=host, port=port, log_config=None, access_log=False)


def _with_store(data_dir: Path | None, database_url: str | None, fn: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``fn`` against the database `serve` uses for this --data-dir / DATABASE_URL (settings from the
    environment, as `serve` reads them). A database that is not there is an error, never created here:
    a command run from the wrong directory must not start an empty database of its own."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    from router.storage.db import database_url as resolve_url
    from router.storage.db import make_engine, migrate

    overrides: dict[str, Any] = {"data_dir": data_dir, "database_url": database_url}
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    if not settings.database_url and not (settings.data_dir / "editgate.db").is_file():
        raise click.ClickException(
            f"no editgate database in {settings.data_dir.resolve()}: pass the data dir `editgate serve` uses "
            "(--data-dir or EDITGATE_DATA_DIR), or its DATABASE_URL"
        )
    url = resolve_url(settings.database_url, settings.data_dir)
    store = Store(make_engine(url))

    async def run() -> T:
        try:
            await migrate(store.engine)
            return await fn(store)
        except (DBAPIError, OSError) as exc:
            shown = make_url(url).render_as_string(hide_password=True)
            why = str(exc).splitlines()[0] or type(exc).__name__
            raise click.ClickException(f"no editgate database at {shown} ({why}): check DATABASE_URL") from None
        finally:
            await store.engine.dispose()

    return asyncio.run(run())


@main.command()
@click.option("--database-url", envvar="DATABASE_URL", default=None, help="PostgreSQL URL [SQLite in the data dir].")
@click.option("--data-dir", envvar="EDITGATE_DATA_DIR", type=click.Path(path_type=Path), default=None)
def migrate(database_url: str | None, data_dir: Path | None) -> None:
    """Bring the database's schema up to date and exit (a deploy's migration job; `serve` also migrates at
    start-up, under an advisory lock, so running both is safe)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    from router.storage.db import database_url as resolve_url
    from router.storage.db import make_engine
    from router.storage.db import migrate as run_migrations

    overrides = {k: v for k, v in {"data_dir": data_dir, "database_url": database_url}.items() if v is not None}
    settings = Settings(**overrides)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = resolve_url(settings.database_url, settings.data_dir)
    engine = make_engine(url)

    async def run() -> None:
        try:
            await run_migrations(engine)
        except (DBAPIError, OSError) as exc:
            shown = make_url(url).render_as_string(hide_password=True)
            raise click.ClickException(f"cannot migrate {shown}: {str(exc).splitlines()[0]}") from None
        finally:
            await engine.dispose()

    asyncio.run(run())
    click.echo("editgate: schema up to date", err=True)


def _tenant_name(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    from router.storage.store import TENANT_NAME, TENANT_NAME_RULE

    if value is not None and not TENANT_NAME.match(value):
        raise click.BadParameter(f"{value!r}: {TENANT_NAME_RULE}")
    return value


@main.group()
def keys() -> None:
    """Create, list and revoke tenant API keys (only their hashes are stored)."""


_db_options = [
    click.option("--data-dir", envvar="EDITGATE_DATA_DIR", type=click.Path(path_type=Path), default=None),
    click.option("--database-url", envvar="DATABASE_URL", default=None),
]


def _with_db(fn):  # type: ignore[no-untyped-def]
    for option in reversed(_db_options):
        fn = option(fn)
    return fn


@keys.command("create")
@click.option("--tenant", callback=_tenant_name, help="Tenant name; created if new. [admin with --admin]")
@click.option("--admin", is_flag=True, help="An admin key: the whole policy, its reload status, guarded /metrics.")
@_with_db
def keys_create(tenant: str | None, admin: bool, data_dir: Path | None, database_url: str | None) -> None:
    """Print a new key for TENANT, once: it is the last word of the output."""
    if tenant is None and not admin:
        raise click.UsageError("say whose key it is: --tenant NAME (or --admin for an operator's key)")
    tenant = tenant or "admin"
    key = _with_store(data_dir, database_url, lambda store: store.create_key(tenant, admin=admin))
    scope = "an admin key" if admin else "a key"
    click.echo(f"Created {scope} for tenant {tenant}. It is shown only now: {key}")


@keys.command("revoke")
@click.argument("key_or_prefix")
@_with_db
def keys_revoke(key_or_prefix: str, data_dir: Path | None, database_url: str | None) -> None:
    """Revoke a key, given whole or by the prefix `keys list` shows."""
    count = _with_store(data_dir, database_url, lambda store: store.revoke_key(key_or_prefix))
    if not count:
        raise click.ClickException("no active key matches")
    click.echo(f"Revoked {count} key(s).")


@keys.command("list")
@_with_db
def keys_list(data_dir: Path | None, database_url: str | None) -> None:
    """Tenants, key prefixes, scope and whether each key is active."""
    for tenant, prefix, admin, _created, revoked in _with_store(data_dir, database_url, lambda s: s.list_keys()):
        click.echo(f"{tenant}\t{prefix}\t{'admin' if admin else 'tenant'}\t{'revoked' if revoked else 'active'}")


@main.group()
def webhooks() -> None:
    """Register the URLs called (signed, Standard Webhooks) on every terminal edit of a tenant."""


def _checked_url(url: str) -> str:
    from router.webhooks.guard import Refused, check

    try:
        asyncio.run(check(url, Settings().webhooks.allow_private))
    except Refused as exc:
        raise click.ClickException(
            f"{url}: {exc} (EDITGATE_WEBHOOK_ALLOW_PRIVATE=true allows private receivers)"
        ) from None
    return url


@webhooks.command("add")
@click.option("--tenant", required=True, callback=_tenant_name, help="Tenant name; created if new.")
@click.argument("url")
@_with_db
def webhooks_add(tenant: str, url: str, data_dir: Path | None, database_url: str | None) -> None:
    """Call URL on each of TENANT's finished edits. The tenant's signing secret is the last word of the
    output when this made it (shown only now); later endpoints share it."""
    from router.webhooks.outbox import add_endpoint

    _checked_url(url)
    try:
        endpoint_id, secret, made = _with_store(data_dir, database_url, lambda s: add_endpoint(s, tenant, url))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Added {endpoint_id} for tenant {tenant}: {url}")
    if made:
        click.echo(f"Signing secret of tenant {tenant}, shown only now: {secret}")
    else:
        click.echo(f"Signed with tenant {tenant}'s existing secret (`editgate webhooks secret --tenant {tenant}`).")


@webhooks.command("list")
@click.option("--tenant", default=None, callback=_tenant_name, help="Only this tenant's endpoints.")
@_with_db
def webhooks_list(tenant: str | None, data_dir: Path | None, database_url: str | None) -> None:
    """Endpoint id, tenant and URL of every registered endpoint."""
    from router.webhooks.outbox import list_endpoints

    for endpoint in _with_store(data_dir, database_url, lambda s: list_endpoints(s, tenant)):
        click.echo(f"{endpoint.id}\t{endpoint.tenant_id}\t{endpoint.url}")


@webhooks.command("remove")
@click.argument("endpoint_id")
@_with_db
def webhooks_remove(endpoint_id: str, data_dir: Path | None, database_url: str | None) -> None:
    """Stop calling an endpoint (deliveries already queued for it still run)."""
    from router.webhooks.outbox import remove_endpoint

    if not _with_store(data_dir, database_url, lambda s: remove_endpoint(s, endpoint_id)):
        raise click.ClickException(f"no endpoint {endpoint_id}")
    click.echo(f"Removed {endpoint_id}.")


@webhooks.command("secret")
@click.option("--tenant", required=True, callback=_tenant_name)
@click.option("--rotate", is_flag=True, help="Make a new secret; deliveries from now on are signed with it.")
@_with_db
def webhooks_secret(tenant: str, rotate: bool, data_dir: Path | None, database_url: str | None) -> None:
    """Print TENANT's signing secret (the last word), for the operator to hand over again; --rotate replaces it."""
    from router.webhooks.outbox import ensure_secret, rotate_secret

    async def run(store: Store) -> str:
        tenant_id = await store.ensure_tenant(tenant)
        return await rotate_secret(store, tenant_id) if rotate else (await ensure_secret(store, tenant_id))[0]

    click.echo(f"Signing secret of tenant {tenant}: {_with_store(data_dir, database_url, run)}")


@main.group()
def policy() -> None:
    """Validate routing policy files."""


@policy.command("check")
@click.argument("policy_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def policy_check(policy_file: Path) -> None:
    """Validate POLICY_FILE and print its rules; each error points at the line of the node that is wrong."""
    from policies.model import PolicyError, parse_policy
    from router.policy_source import checked

    try:
        parsed = checked(parse_policy(policy_file.read_text()))
    except PolicyError as exc:
        for message in exc.problems:
            click.echo(f"{policy_file}: {message}", err=True)
        raise SystemExit(1) from None
    click.echo(f"{policy_file}: valid (version {parsed.version}, digest {parsed.digest})")
    for i, rule in enumerate(parsed.rules, 1):
        when = ", ".join(f"{k}={v}" for k, v in rule.when.items()) or "always"
        click.echo(f"{i:>3}. {rule.name:<18} when {when}  ->  {' > '.join([rule.route, *rule.fallbacks])}")
    click.echo(f"     {'default':<18} ->  {' > '.join([parsed.default_route, *parsed.default_fallbacks])}")
    for exp in parsed.experiments:
        arms = ", ".join(f"{a.name} {a.weight:g}" for a in exp.arms)
        click.echo(f"experiment {exp.name}: sticky by {exp.sticky_by}, holdout {exp.holdout:g}, arms {arms}")


@main.command()
@click.argument("request_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--policy", "policy_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--tenant", default="dev", show_default=True)
@click.option("--spent", type=float, default=0.0, show_default=True, help="Today's spend for budget checks (USD).")
def explain(request_file: Path, policy_file: Path | None, tenant: str, spent: float) -> None:
    """Print the routing decision for REQUEST_FILE without calling anything.

    REQUEST_FILE is JSON with the fields of POST /v1/edits, and `image_path`, `mask_path`,
    `reference_paths` (relative to the file) for the images.
    """
    import json as jsonlib

    from policies import decide
    from providers.pricing import load_prices
    from router.intake.prepare import prepare
    from router.intake.request import RawInputs, parse_fields
    from router.policy_source import read_policy
    from router.registry import configured_capabilities
    from router.service import estimates_for

    settings = Settings()
    body = jsonlib.loads(request_file.read_text())
    base = request_file.parent

    def read(name: str | None) -> bytes | None:
        return (base / name).read_bytes() if name else None

    image = read(body.pop("image_path", None))
    if image is None:
        raise click.ClickException("the request needs image_path (the source photo)")
    raw = RawInputs(image=image, mask=read(body.pop("mask_path", None)),
                    references=[read(r) or b"" for r in body.pop("reference_paths", [])])  # fmt: skip
    try:
        prepared = prepare(parse_fields(body), raw, settings.limits, tenant)
    except Exception as exc:  # an ApiError from intake: show it as the API would
        raise click.ClickException(str(getattr(exc, "message", exc))) from None
    running = read_policy(policy_file or settings.policy_file)
    caps = configured_capabilities(settings, emulated=not settings.has_provider_keys())
    decision = decide(
        prepared.features.model_copy(update={"tenant": tenant}), running,
        forced_provider=settings.image_edit_provider, capabilities=caps,
        estimates=estimates_for(running, list(caps), prepared, load_prices(settings.pricing_file)),
        spent_today_usd=spent, keys={"tenant": tenant, "key": prepared.request.experiment_key},
    )  # fmt: skip
    for step in decision.trace:
        click.echo(f"{'MATCH' if step.matched else 'skip ':5} {step.rule:<24} {step.why}")
    for dropped in decision.dropped:
        click.echo(f"drop  {dropped.provider:<24} {'; '.join(dropped.reasons)}")
    if decision.refusal:
        click.echo(f"=> refused {decision.refusal.status} {decision.refusal.code}: {decision.refusal.message}")
    else:
        route_text = " > ".join(f"{c.provider} ({c.model}, est ${c.estimate_usd})" for c in decision.candidates)
        click.echo(f"=> rule {decision.rule}: {route_text}")
    click.echo(jsonlib.dumps(decision.model_dump(), indent=2))


@main.command()
@click.argument("experiment")
@click.option("--tenant", default=None, help="Only this tenant's edits (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_with_db
def report(experiment: str, tenant: str | None, as_json: bool, data_dir: Path | None, database_url: str | None) -> None:
    """Per-arm results of EXPERIMENT (or a shadow) from the ledger, with 95% intervals."""
    from router.reports import build_report, render

    attempts, latest, versions = _with_store(data_dir, database_url, lambda s: s.experiment_rows(experiment, tenant))
    if not attempts:
        raise click.ClickException(f"no edits recorded for experiment {experiment!r}")
    built = build_report(experiment, attempts, latest, versions)
    click.echo(built.model_dump_json(indent=2) if as_json else render(built))


SERVER = click.option("--server", envvar="EDITGATE_URL", default="http://127.0.0.1:8080", show_default=True)
API_KEY = click.option("--api-key", envvar="EDITGATE_API_KEY", default=None)
TIMEOUT = click.option("--timeout", type=float, default=900.0, show_default=True, help="Seconds to wait.")
PARTIALS = click.option("--partials", type=click.Path(file_okay=False, path_type=Path), default=None,
                        help="Save the provider's previews here as partial-<index>.<format>.")  # fmt: skip
STREAM_READ_S = 60.0
"""A stream silent this long (the server sends keep-alives every 15 s) is dropped and resumed."""


@main.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--prompt", required=True, help="What to change.")
@click.option("--mask", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Mask image.")
@click.option("--reference", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--protect", default="", help="Comma-separated chips, e.g. face,label.")
@click.option("--mode", type=click.Choice(["inpaint", "variation", "outpaint"]), default="inpaint")
@click.option("--aspect", default=None, help="Outpaint target aspect, e.g. 9:16.")
@click.option("--size", default=None, help="WxH, auto or keep.")
@click.option("--format", "output_format", type=click.Choice(["png", "jpeg", "webp", "gif", "svg"]), default=None)
@click.option("--provider", default=None, help="Ask for one provider.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Where to write the result.")
@PARTIALS
@click.option("--partial-images", type=click.IntRange(0, 3), default=None,
              help="Previews to ask for [2 with --partials, else 0].")  # fmt: skip
@click.option("--async", "no_wait", is_flag=True, help="Print the edit id and its Location, and exit.")
@SERVER
@API_KEY
@TIMEOUT
def edit(image: Path, prompt: str, mask: Path | None, reference: tuple[Path, ...], protect: str, mode: str,
         aspect: str | None, size: str | None, output_format: str | None, provider: str | None, out: Path | None,
         partials: Path | None, partial_images: int | None, no_wait: bool, server: str, api_key: str | None,
         timeout: float) -> None:  # fmt: skip
    """Send IMAGE (with --mask) to a running editgate, follow its progress and save the result (--out, or
    IMAGE.edited.FORMAT in the current directory). Ctrl-C stops waiting, never the (paid) edit."""
    if partial_images is None:
        partial_images = 2 if partials else 0
    fields = {"prompt": prompt, "mode": mode, "protect": protect, "aspect": aspect, "size": size,
              "output_format": output_format, "provider": provider, "partial_images": partial_images}  # fmt: skip
    data = {k: str(v) for k, v in fields.items() if v}
    files: list[tuple[str, tuple[str, bytes]]] = [("image", (image.name, image.read_bytes()))]
    if mask:
        files.append(("mask", (mask.name, mask.read_bytes())))
    files += [("reference", (r.name, r.read_bytes())) for r in reference]
    headers = _auth(api_key)
    with _api_client(server) as client:
        record, location = _submit(client, data, files, headers)
        if no_wait:
            click.echo(json.dumps({"id": record["id"], "location": location, "status": record["status"]}))
            return
        if record.get("status") != "succeeded":  # an idempotent replay answers the finished edit at once
            record = _wait_for(client, record["id"], headers, timeout, partials)
        _save(client, record, headers, out or Path.cwd() / f"{image.stem}.edited.{record['images'][0]['format']}")


@main.command()
@click.argument("edit_id")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Where to write the result [ID.FORMAT].")
@PARTIALS
@SERVER
@API_KEY
@TIMEOUT
def wait(edit_id: str, out: Path | None, partials: Path | None, server: str, api_key: str | None,
         timeout: float) -> None:  # fmt: skip
    """Follow an edit (started with `editgate edit --async`, or one whose wait was interrupted) to its end and
    save its image."""
    headers = _auth(api_key)
    with _api_client(server) as client:
        record = _wait_for(client, edit_id, headers, timeout, partials)
        _save(client, record, headers, out or Path.cwd() / f"{edit_id}.{record['images'][0]['format']}")


@main.command("what-if")
@click.argument("candidate", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--since", default="7d", show_default=True, help="Window start: Nd, Nh or an ISO-8601 time.")
@click.option("--tenant", default=None, help="Whose edits [the key's tenant]; another, or '*' for all: admin key.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON answer.")
@SERVER
@API_KEY
def what_if(candidate: Path, since: str, tenant: str | None, as_json: bool, server: str, api_key: str | None) -> None:
    """Replay past edits through the CANDIDATE policy file on a running editgate (POST /v1/route/what-if):
    which edits change route, the cost before and after, refusals, and the providers it moves traffic to.
    No provider is called."""
    from router.what_if_render import render

    body = {"policy": candidate.read_text(), "since": since, **({"tenant": tenant} if tenant else {})}
    with _api_client(server) as client:
        try:
            resp = client.post("/v1/route/what-if", json=body, headers=_auth(api_key))
        except httpx.HTTPError as exc:
            raise click.ClickException(f"could not reach {client.base_url}: {exc}") from exc
    if resp.status_code != 200:
        raise click.ClickException(api_error(resp))
    click.echo(json.dumps(resp.json(), indent=2) if as_json else render(resp.json()))


def _auth(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _api_client(server: str) -> httpx.Client:
    return httpx.Client(base_url=server, timeout=httpx.Timeout(STREAM_READ_S, connect=10.0))


def _submit(client: httpx.Client, data: dict[str, str], files: list[Any], headers: dict[str, str]
            ) -> tuple[dict[str, Any], str]:  # fmt: skip
    """Queue the edit (``Prefer: respond-async``): its record and its ``Location``."""
    try:
        resp = client.post("/v1/edits", data=data, files=files, headers={**headers, "Prefer": "respond-async"})
    except httpx.HTTPError as exc:
        raise click.ClickException(f"could not reach {client.base_url}: {exc}") from exc
    if resp.status_code not in (200, 202):
        raise click.ClickException(api_error(resp))
    body = resp.json()
    return body, str(client.base_url.join(resp.headers.get("location", f"/v1/edits/{body['id']}")))


def _wait_for(client: httpx.Client, edit_id: str, headers: dict[str, str], timeout: float,
              partials: Path | None) -> dict[str, Any]:  # fmt: skip
    """The completed record. A failed edit exits 1 with its error and id; Ctrl-C leaves the edit running."""
    try:
        kind, data = follow(client, edit_id, headers, timeout, partials)
    except KeyboardInterrupt:
        click.echo(f"\nStopped waiting. Edit {edit_id} was NOT canceled: it keeps running on the server (and may "
                   f"be billed). Resume with: editgate wait {edit_id}", err=True)  # fmt: skip
        sys.exit(130)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"could not reach {client.base_url}: {exc}") from exc
    if kind == "failed":
        raise click.ClickException(f"edit {edit_id} failed: {data.get('code')}: {data.get('message')}")
    return data


def _save(client: httpx.Client, record: dict[str, Any], headers: dict[str, str], target: Path) -> None:
    """Download the result to ``target`` and print the one-line JSON summary."""
    result = record["images"][0]
    target.write_bytes(client.get(result["url"], headers=headers).raise_for_status().content)
    summary = {
        "id": record["id"],
        "out": str(target),
        "provider": record["provider"],
        "rule": record["route"]["rule"],
        "size": f"{result['width']}x{result['height']}",
        "latency_ms": record["latency_ms"]["total"],
        "emulated": record["emulated"],
    }
    click.echo(json.dumps(summary))


if __name__ == "__main__":
    main()
