"""The API docs at /docs without the internet: Swagger UI served by the app itself.

FastAPI's own /docs page loads Swagger UI's script and style sheet from a CDN, which a newsroom
behind a firewall (or a machine without a network) cannot reach. The same files ship in the
``fastapi-offline`` package (MIT licence); the app serves them under ``/docs/assets``, open like
the page's own static files, and its /docs page points Swagger UI at them. ReDoc, FastAPI's
second docs page, is switched off rather than kept in a second copy.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from .security import docs_csp

DOCS_PATH = "/docs"
DOCS_ASSETS = "/docs/assets"
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def swagger_ui_files() -> Path:
    """The folder of Swagger UI's distribution files (swagger-ui-bundle.js, swagger-ui.css)."""
    return Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI) -> None:
    """Serve Swagger UI for ``app``'s OpenAPI description at /docs, entirely from the app.
    ``app`` must be created with ``docs_url=None, redoc_url=None``."""
    if app.openapi_url is None:
        raise ValueError("install_docs: the app serves no OpenAPI description (openapi_url=None)")
    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_files()), name="docs-assets")
    page = get_swagger_ui_html(
        openapi_url=app.openapi_url, title=f"{app.title} · API",
        swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url="data:,",
        # Swagger UI's default shows a badge fetched from an online validator: nothing leaves the app
        swagger_ui_parameters={"validatorUrl": None}).body
    # the page is the same for every request: its start-up script is allowed by its hash alone
    hashes = [base64.b64encode(hashlib.sha256(script).digest()).decode() for script in _INLINE_SCRIPT.findall(page)]
    headers = {"content-security-policy": docs_csp(hashes)}

    @app.get(DOCS_PATH, include_in_schema=False)
    def docs():
        return HTMLResponse(page, headers=headers)
