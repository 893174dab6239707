"""The dashboard's web application: three pages, a JSON API, live streams, three actions.

Pages are static HTML that build themselves from the API (``static/``); there is no
server-side templating and no front-end build step. ``create_app`` is what
``graflow dashboard`` serves with uvicorn, and what the tests start.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from graflow.dashboard import actions, streams
from graflow.dashboard.auth import AuthConfig, AuthMiddleware
from graflow.dashboard.backend import Backend
from graflow.exceptions import (
    GraflowError,
    InvalidIdentifierError,
    RedisUnavailableError,
    SessionNotFoundError,
)
from graflow.identifiers import check_session_id
from graflow.redisconn import wrap_connection_errors

STATIC = Path(__file__).parent / "static"
_STATES = ("queued", "running", "completed", "failed", "canceled", "terminated")


def _page(name: str) -> Any:
    async def page(request: Request) -> Response:
        return FileResponse(STATIC / name, headers={"cache-control": "no-store"})

    return page


def _session(request: Request) -> str:
    session_id = str(request.path_params["session"])
    try:
        check_session_id(session_id)
    except InvalidIdentifierError as exc:
        raise HTTPException(400, str(exc)) from exc
    return session_id


def _states(request: Request) -> list[str]:
    states = [s for s in request.query_params.getlist("state") if s]
    unknown = [s for s in states if s not in _STATES]
    if unknown:
        raise HTTPException(400, f"unknown state {unknown[0]!r}; one of {', '.join(_STATES)}")
    return states


def create_app(backend: Backend, auth: AuthConfig | None = None, async_client: Any = None) -> Any:
    """The ASGI application for ``backend``'s pool (wrapped in the auth middleware)."""
    import redis.asyncio

    state: dict[str, Any] = {"async": async_client}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        if state["async"] is None:
            state["async"] = redis.asyncio.Redis.from_url(backend.redis_url)
        yield
        await state["async"].aclose()

    def guarded(fn: Any, *args: Any) -> Any:
        with wrap_connection_errors(backend.redis_url):
            return fn(*args)

    async def call(fn: Any, *args: Any) -> Any:
        return await run_in_threadpool(guarded, fn, *args)

    async def api_runs(request: Request) -> Response:
        doc = await call(backend.runs, _states(request), request.query_params.get("workflow"))
        return JSONResponse(doc)

    async def api_runs_stream(request: Request) -> Response:
        updates = streams.runs_updates(backend, _states(request), request.query_params.get("workflow"))
        return StreamingResponse(updates, media_type="text/event-stream", headers={"cache-control": "no-store"})

    async def api_run(request: Request) -> Response:
        return JSONResponse(await call(backend.run, _session(request)))

    async def api_run_stream(request: Request) -> Response:
        session_id = _session(request)
        await call(backend.state, session_id)  # 404 before the stream starts
        after = request.query_params.get("after") or "0-0"
        updates = streams.run_updates(backend, state["async"], session_id, after)
        return StreamingResponse(updates, media_type="text/event-stream", headers={"cache-control": "no-store"})

    async def api_events(request: Request) -> Response:
        session_id = _session(request)
        after = request.query_params.get("after")
        return JSONResponse({"events": await call(backend.events, session_id, after, 1000)})

    async def api_task(request: Request) -> Response:
        session_id = _session(request)
        task_id = str(request.path_params["task"])
        try:
            return JSONResponse(await call(backend.task, session_id, task_id))
        except KeyError:
            raise HTTPException(404, f"run {session_id} has no task {task_id!r}") from None

    async def api_workers(request: Request) -> Response:
        return JSONResponse(await call(backend.workers))

    async def act(request: Request) -> Response:
        session_id = _session(request)
        action = request.path_params["action"]
        try:
            body = await request.json()
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        if action == "cancel":
            doc = await call(actions.cancel, backend, session_id)
        elif action == "retry":
            doc = await call(actions.retry, backend, session_id)
        elif action == "resume":
            checkpoint = body.get("checkpoint")
            if not isinstance(checkpoint, str) or not checkpoint:
                raise HTTPException(400, "resume needs {\"checkpoint\": \"<location>\"}: one of the run's checkpoints")
            doc = await call(actions.resume, backend, session_id, checkpoint)
        else:
            raise HTTPException(404, f"no action {action!r}; cancel, resume or retry")
        return JSONResponse(doc)

    async def healthz(request: Request) -> Response:
        try:
            await call(backend.client.ping)
        except Exception as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=503)
        return JSONResponse({"ok": True})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, actions.ActionRefused)
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"{exc}; it may have expired or been purged"}, status_code=404)

    async def unavailable(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=503)

    async def graflow_error(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=500)

    routes = [
        Route("/", _page("runs.html")),
        Route("/runs/{session}", _page("run.html")),
        Route("/workers", _page("workers.html")),
        Route("/healthz", healthz),
        Route("/api/runs", api_runs),
        Route("/api/runs/stream", api_runs_stream),
        Route("/api/runs/{session}", api_run),
        Route("/api/runs/{session}/stream", api_run_stream),
        Route("/api/runs/{session}/events", api_events),
        Route("/api/runs/{session}/tasks/{task:path}", api_task),
        Route("/api/runs/{session}/{action}", act, methods=["POST"]),
        Route("/api/workers", api_workers),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            HTTPException: http_error,
            actions.ActionRefused: refused,
            SessionNotFoundError: not_found,
            RedisUnavailableError: unavailable,
            GraflowError: graflow_error,
        },
    )
    return AuthMiddleware(app, auth or AuthConfig())


__all__ = ["create_app"]
