"""Liveness and readiness (SQL, broker and artifact store reachable)."""

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import text

from api.deps import SettingsDep
from core.artifacts import open_store
from core.broker import broker_reachable
from core.db import get_engine
from core.errors import Unavailable
from core.settings import Settings

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


async def readiness(settings: Settings) -> dict[str, bool]:
    """Whether SQL, the broker and the artifact store answer; raises 503 naming what does not."""
    def check() -> dict[str, bool]:
        try:
            with get_engine(settings).connect() as connection:
                connection.execute(text("SELECT 1"))
            database = True
        except Exception:
            database = False
        return {"database": database, "broker": broker_reachable(settings),
                "artifacts": open_store(settings).reachable()}

    checks = await run_in_threadpool(check)
    if not all(checks.values()):
        down = ", ".join(name for name, ok in checks.items() if not ok)
        raise Unavailable(f"not ready: {down} unreachable",
                          [{"field": k, "value": v} for k, v in checks.items()])
    return checks


@router.get("/readyz")
async def readyz(settings: SettingsDep) -> dict:
    return {"status": "ready", **await readiness(settings)}
