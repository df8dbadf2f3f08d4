"""The dashboard's and the review page's static files, served from the package."""

from __future__ import annotations

from importlib.resources import files

from faust.web import Response, View

__all__ = ["NO_CACHE", "asset_response", "page_response"]

STATIC = files("streams.http.dashboard") / "static"
NO_CACHE = {"Cache-Control": "no-store"}


def _read(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def page_response(web: View, name: str) -> Response:
    """The HTML page ``name``, never cached."""
    return web.html(_read(name), headers=NO_CACHE)


def asset_response(web: View, assets: dict[str, tuple[str, str]], asset: str) -> Response:
    """``asset`` when ``assets`` lists it (served name -> file, content type); else 404."""
    if asset not in assets:
        return web.json({"error": f"no asset {asset!r}"}, status=404)
    name, content_type = assets[asset]
    return web.text(_read(name), content_type=content_type, headers=NO_CACHE)
