"""The docs page (``/docs/``) and the OpenAPI document, served whole by editgate itself.

Swagger UI's assets ship inside the package (``router/static/swagger-ui``, vendored from npm's
``swagger-ui-dist``), so the page works where production networks have no internet, as many do.
"""

from __future__ import annotations

from pathlib import Path

from litestar.datastructures import CacheControlHeader
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router

from router.api.openapi import COMPONENTS

SWAGGER_UI_DIR = Path(__file__).resolve().parent.parent / "static" / "swagger-ui"
ASSETS_PATH = "/docs/assets"


def docs_assets() -> Router:
    """Swagger UI's files at ``/docs/assets/``; they change only with the package, so caches may keep them."""
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[SWAGGER_UI_DIR],
        name="docs_assets",
        cache_control=CacheControlHeader(public=True, max_age=86400),
    )


def openapi_config(version: str) -> OpenAPIConfig:
    swagger = SwaggerRenderPlugin(
        path="/",
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
    )
    return OpenAPIConfig(
        title="editgate",
        version=version,
        description="One HTTP API in front of many AI image-edit providers.",
        path="/docs",
        render_plugins=[swagger],
        components=COMPONENTS,
    )
