"""The live streams, the credentials and the command's refusals, against the real server."""

from __future__ import annotations

import base64
import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import dash_flows
import pytest
from dashboard_server import Dashboard, child_env, submit
from workerpool import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]


class Stream:
    """A server-sent-events reader over one HTTP connection."""

    def __init__(self, base: str, path: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(base)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.conn.request("GET", path, headers=headers or {})
        self.response = self.conn.getresponse()

    def frames(self) -> Iterator[tuple[str, Any]]:
        """(event name, data) of each frame; comments (keep-alives) are skipped."""
        name, data = "message", []
        while True:
            raw = self.response.fp.readline()
            if not raw:
                return
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line == "" and data:
                yield name, json.loads("\n".join(data))
                name, data = "message", []

    def close(self) -> None:
        self.conn.close()


def test_a_run_stream_sends_what_changes_until_the_run_ends(pool, dashboard):
    run = submit(pool, dash_flows.fan_loop())
    wait_until(lambda: "middle" in (run.channel.get("waiting") or []), 30, "middle at its gate")
    stream = Stream(dashboard.url, f"/api/runs/{run.session_id}/stream")
    assert stream.response.status == 200
    assert stream.response.getheader("content-type").startswith("text/event-stream")
    frames = stream.frames()
    name, first = next(frames)
    assert name == "message" and first["nodes"]["middle"] == "running"
    assert first["summary"]["state"] == "running"
    seen_events = [e["event"] for e in first["events"]]
    assert "started" in seen_events and "completed" in seen_events
    run.channel.set("go", True)
    states: dict[str, str] = dict(first["nodes"])
    events = list(first["events"])
    for name, frame in frames:
        if name == "end":
            assert frame == {"state": "completed"}
            break
        # Only changes travel: a node in a later frame has a new state.
        assert all(states.get(k) != v for k, v in frame.get("nodes", {}).items()), frame
        states.update(frame.get("nodes", {}))
        events += frame.get("events", [])
    else:
        pytest.fail("the stream ended without an end frame")
    stream.close()
    assert states["middle"] == "completed" and states["loop"] == "completed" and states["join"] == "completed"
    ids = [e["id"] for e in events]
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-"))) and len(ids) == len(set(ids))
    assert events[-1]["event"] == "finished"

    # Reconnecting after the last event it saw, a page gets nothing twice.
    again = Stream(dashboard.url, f"/api/runs/{run.session_id}/stream?after={ids[-1]}")
    frames = list(again.frames())
    again.close()
    assert frames[-1][0] == "end"
    assert not [e for _, f in frames for e in f.get("events", [])]


def test_the_runs_stream_sends_the_list_when_it_changes(pool, dashboard):
    stream = Stream(dashboard.url, "/api/runs/stream")
    frames = stream.frames()
    _, first = next(frames)
    assert first["runs"] == [] and first["prefix"] == pool.prefix
    run = submit(pool, dash_flows.gated_pair(), initial_channel={"go": True})
    for _, frame in frames:
        mine = [r for r in frame["runs"] if r["session_id"] == run.session_id]
        if mine and mine[0]["state"] == "completed":
            break
    stream.close()


def test_a_token_guards_pages_api_and_actions(redis_url, pool):
    board = Dashboard(redis_url, pool.prefix, GRAFLOW_DASHBOARD_TOKEN="s3cret-token")
    try:
        status, body, _ = board.request("GET", "/api/runs")
        assert status == 401 and "?token=" in body["error"]
        status, _, _ = board.request("GET", "/", headers={"authorization": "Bearer wrong"})
        assert status == 401
        status, body, _ = board.request("GET", "/api/runs", headers={"authorization": "Bearer s3cret-token"})
        assert status == 200 and body["runs"] == []
        # ?token= once: a cookie, and the address without the token.
        conn = http.client.HTTPConnection(urlsplit(board.url).hostname, urlsplit(board.url).port, timeout=10)
        conn.request("GET", "/?token=s3cret-token&state=failed")
        response = conn.getresponse()
        response.read()
        assert response.status == 303 and response.getheader("location") == "/?state=failed"
        cookie = response.getheader("set-cookie")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        status, _, _ = board.request("GET", "/api/runs", headers={"cookie": cookie.split(";")[0]})
        assert status == 200
        assert board.get("/healthz") == {"ok": True}  # probes need no credentials
        # An action from another site is refused, even with the credentials.
        run = submit(pool, dash_flows.gated_pair())
        auth = {"authorization": "Bearer s3cret-token"}
        status, body, _ = board.request("POST", f"/api/runs/{run.session_id}/cancel", {},
                                        headers={**auth, "origin": "http://evil.example"})  # fmt: skip
        assert status == 403 and "cross-origin" in body["error"]
        status, _, _ = board.request("POST", f"/api/runs/{run.session_id}/cancel", None,
                                     headers={**auth, "content-type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert status == 403
        assert run.status().state in ("queued", "running")
        status, body, _ = board.request("POST", f"/api/runs/{run.session_id}/cancel", {},
                                        headers={**auth, "origin": board.url})  # fmt: skip
        assert status == 200 and run.status().state == "canceled"
    finally:
        board.stop()


def test_basic_auth(redis_url, pool):
    board = Dashboard(redis_url, pool.prefix, GRAFLOW_DASHBOARD_USER="ops", GRAFLOW_DASHBOARD_PASSWORD="pa:ss")
    try:
        status, _, headers = board.request("GET", "/")
        assert status == 401 and headers["www-authenticate"].startswith("Basic ")
        good = base64.b64encode(b"ops:pa:ss").decode()
        bad = base64.b64encode(b"ops:nope").decode()
        assert board.request("GET", "/api/runs", headers={"authorization": f"Basic {good}"})[0] == 200
        assert board.request("GET", "/api/runs", headers={"authorization": f"Basic {bad}"})[0] == 401
        assert board.request("GET", "/api/runs", headers={"authorization": "Basic %%%"})[0] == 401
    finally:
        board.stop()


def _command(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "graflow", "dashboard", *args], env=child_env(**env),
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_the_command_refuses_an_open_non_loopback_address_and_a_dead_redis(redis_url):
    out = _command("--url", redis_url, "--host", "0.0.0.0", "--port", "0")
    assert out.returncode == 2
    assert out.stderr.startswith("graflow: error: refusing to serve 0.0.0.0 without credentials")
    assert len(out.stderr.strip().splitlines()) == 1
    out = _command("--url", "redis://127.0.0.1:1/0", "--port", "0")
    assert out.returncode == 3 and "127.0.0.1:1" in out.stderr and "Traceback" not in out.stderr
