"""The dashboard: static files under `/static`, its page at `/`, the chart library's bundle."""

import importlib.util
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from core.errors import NotFound

STATIC_DIR = Path(__file__).resolve().parent / "static"
PLOTLY_ROUTE = "/static/vendor/plotly.min.js"


def plotly_bundle() -> Path | None:
    """The browser bundle shipped inside the installed `plotly` wheel.

    Found through the package's location, without importing plotly's Python code.
    """
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    bundle = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    return bundle if bundle.is_file() else None


def install(app: FastAPI) -> None:
    bundle = plotly_bundle()

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        # Always the latest page after an upgrade; the scripts it loads are revalidated too.
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get(PLOTLY_ROUTE, include_in_schema=False)
    def plotly_js() -> FileResponse:
        if bundle is None:
            raise NotFound("the chart library is not installed: pip install plotly")
        return FileResponse(bundle, media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
