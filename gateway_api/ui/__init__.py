"""The admin UI's assets (package data) and the page that carries its configuration.

The UI is static files and one HTML page; the page learns where the API is from a JSON
block written into it when it is served, so the same files work behind the gateway
itself (same origin), behind `pmp-gateway ui` (the `/api` proxy) or against another
origin (`--skip-proxy`, with PMP_CORS_ORIGINS on the API).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
_CONFIG_SLOT = "{{PMP_UI_CONFIG}}"
_VIEWS_SLOT = "<!--VIEWS-->"


@cache
def _index_template() -> str:
    """index.html with every view's markup (static/views/*.html) in its place."""
    views = sorted((STATIC_DIR / "views").glob("*.html"))
    markup = "\n".join(view.read_text(encoding="utf-8") for view in views)
    return (STATIC_DIR / "index.html").read_text(encoding="utf-8").replace(_VIEWS_SLOT, markup)


def index_html(api_base: str) -> str:
    """The UI's page, telling the browser to call the API at `api_base` ("" = same origin)."""
    config = json.dumps({"apiBase": api_base.rstrip("/")})
    # `<` escaped so that no value can close the script element it sits in.
    return _index_template().replace(_CONFIG_SLOT, config.replace("<", "\\u003c"))


def cors_origins(setting: str) -> list[str]:
    """PMP_CORS_ORIGINS as a list (comma-separated; blanks ignored)."""
    return [origin.strip().rstrip("/") for origin in setting.split(",") if origin.strip()]
