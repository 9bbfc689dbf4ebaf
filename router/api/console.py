"""The console (``/console``): a browser client of the public API, served whole by editgate itself.

Its files ship inside the package (``router/console/static``: plain ES modules, CSS and the vendored uPlot),
so it works offline and needs no build step. Every console response carries a strict Content-Security-Policy:
scripts, styles and connections only from this origin, images also from ``blob:``/``data:`` (results are
fetched with the bearer key and shown as object URLs), nothing inline, no framing. The console signs in with
an API key kept in the tab's ``sessionStorage`` and sent as a bearer header: no cookie, so no CSRF surface.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Response, get
from litestar.datastructures import CacheControlHeader
from litestar.response import File, Redirect
from litestar.router import Router
from litestar.static_files import create_static_files_router

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console" / "static"
ASSETS_PATH = "/console/static"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def _secured(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


@get("/", include_in_schema=False)
async def root() -> Redirect:
    """A person who opens the service's address lands on the console."""
    return Redirect(path="/console", status_code=302)


@get(["/console", "/console/"], include_in_schema=False, after_request=_secured)
async def console_page() -> File:
    """The console's one HTML page; the pages inside it are client-side (``/console#/edit`` ...)."""
    return File(
        path=CONSOLE_DIR / "index.html",
        media_type="text/html",
        content_disposition_type="inline",
        headers={"Cache-Control": "no-cache"},
    )


def console_assets() -> Router:
    """Scripts, styles and the vendored chart library; revalidated, since they change with the package."""
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[CONSOLE_DIR],
        name="console_assets",
        cache_control=CacheControlHeader(no_cache=True),
        after_request=_secured,
    )


CONSOLE_HANDLERS = [root, console_page, console_assets()]
