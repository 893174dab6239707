"""The dashboard's JSON for runs in each state, served by the real command over real workers."""

from __future__ import annotations

import dash_flows
import pytest
from dashboard_server import submit
from workerpool import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _waiting(run, task_id):
    return lambda: task_id in (run.channel.get("waiting") or [])


def test_a_fan_out_with_a_loop_live_then_completed(pool, dashboard):
    run = submit(pool, dash_flows.fan_loop())
    wait_until(_waiting(run, "middle"), 30, "middle at its gate")
    doc = dashboard.get(f"/api/runs/{run.session_id}")
    assert doc["summary"]["state"] == "running"
    assert doc["nodes"]["start"] == "completed"
    assert doc["nodes"]["middle"] == "running"
    assert "join" not in doc["nodes"]  # not reached yet: the page draws it pending
    group = next(n for n in doc["shape"]["nodes"] if n["kind"] == "group")
    assert group["members"] == ["left", "middle", "right"]
    assert ["start", group["id"]] in doc["shape"]["edges"]
    assert set(doc["layout"]["nodes"]) >= {"start", "left", "middle", "right", "join", "loop"}
    assert group["id"] in doc["layout"]["groups"]
    running = {a["task_id"]: a for a in doc["running"]}
    assert running["middle"]["worker"].startswith(pool.prefix) and not running["middle"]["lost"]

    run.channel.set("go", True)
    run.wait(30)
    doc = dashboard.get(f"/api/runs/{run.session_id}")
    assert doc["summary"]["state"] == "completed" and doc["summary"]["done"]
    static = {"start", "left", "middle", "right", "join", "loop", group["id"]}
    assert {t: doc["nodes"][t] for t in static} == dict.fromkeys(static, "completed")
    # Loop iterations are the loop node, counted, not nodes of their own.
    assert doc["counts"]["loop"][0] == 3
    assert not [n for n in doc["shape"]["nodes"] if "_cycle_" in n["id"]]
    assert doc["error"] == {}
    assert [e["event"] for e in doc["events"]][-1] == "finished"

    panel = dashboard.get(f"/api/runs/{run.session_id}/tasks/loop")
    assert panel["state"] == "completed" and panel["cycles"] == 3
    assert len(panel["attempts"]) == 3  # one per iteration, folded into the loop's panel
    assert {a["outcome"] for a in panel["attempts"]} == {"completed"}
    join = dashboard.get(f"/api/runs/{run.session_id}/tasks/join")
    assert join["result"]["present"] and join["result"]["type"] == "dict"
    # User data comes back as data: the page puts it in the DOM as text.
    assert '"<b>not markup</b>": 1' in join["result"]["text"]
    middle = dashboard.get(f"/api/runs/{run.session_id}/tasks/middle")
    assert middle["writes"] == ["waiting", "middle.out"]
    assert dashboard.get(f"/api/runs/{run.session_id}/tasks/left")["writes"] == []
    start = dashboard.get(f"/api/runs/{run.session_id}/tasks/start")
    assert any("starting the fan-out" in e.get("text", "") for e in start["logs"])
    assert start["attempts"][0]["worker"].startswith(pool.prefix)


def test_a_failed_run_shows_its_error_and_checkpoint_then_retries(pool, dashboard, tmp_path):
    run = submit(pool, dash_flows.checkpoint_then_fail(), initial_channel={"fail": True})
    with pytest.raises(Exception, match="second refuses"):
        run.wait(30)
    doc = dashboard.get(f"/api/runs/{run.session_id}")
    assert doc["summary"]["state"] == "failed"
    assert doc["nodes"]["first"] == "completed" and doc["nodes"]["second"] == "failed"
    assert "third" not in doc["nodes"]  # never reached: drawn skipped on an ended run
    assert doc["error"]["task"] == "second" and doc["error"]["type"] == "GraflowRuntimeError"
    assert "caused by ValueError: second refuses" in doc["error"]["message"]
    assert "ValueError: second refuses while fail is set" in doc["error"]["traceback"]
    [checkpoint] = doc["checkpoints"]
    assert checkpoint["location"] == doc["summary"]["last_checkpoint"]
    assert checkpoint["readable"] and checkpoint["session_id"] == run.session_id
    assert checkpoint["steps"] == 1 and checkpoint["size"] > 0
    assert checkpoint["metadata"]["stage"] == "first" and checkpoint["metadata"]["task_id"] == "first"
    panel = dashboard.get(f"/api/runs/{run.session_id}/tasks/second")
    assert panel["state"] == "failed" and panel["attempts"][-1]["outcome"] == "failed"
    assert "Traceback" in panel["error"]["traceback"]

    # Cancel does not apply to an ended run; resume refuses a path the run did not write.
    status, body = dashboard.post(f"/api/runs/{run.session_id}/cancel")
    assert status == 409 and "already ended (failed)" in body["error"]
    status, body = dashboard.post(f"/api/runs/{run.session_id}/resume", {"checkpoint": str(tmp_path / "x.pkl")})
    assert status == 400 and "is not a checkpoint of run" in body["error"]
    status, body = dashboard.post(f"/api/runs/{run.session_id}/resume", {})
    assert status == 400 and "resume needs" in body["error"]

    run.channel.set("fail", False)
    status, body = dashboard.post(f"/api/runs/{run.session_id}/retry")
    assert status == 200, body
    assert body["checkpoint"] == checkpoint["location"]
    assert run.wait(30) == "third"
    doc = dashboard.get(f"/api/runs/{run.session_id}")
    assert doc["summary"]["state"] == "completed"
    assert doc["nodes"]["second"] == "completed" and doc["nodes"]["third"] == "completed"
    status, body = dashboard.post(f"/api/runs/{run.session_id}/retry")
    assert status == 409 and "not failed" in body["error"]


def test_cancel_a_live_run_and_resume_rules(pool, dashboard):
    run = submit(pool, dash_flows.gated_pair())
    wait_until(_waiting(run, "hold"), 30, "hold at its gate")
    status, body = dashboard.post(f"/api/runs/{run.session_id}/retry")
    assert status == 409 and "running, not failed" in body["error"]
    status, body = dashboard.post(f"/api/runs/{run.session_id}/resume", {"checkpoint": "/x.pkl"})
    assert status == 409 and "still running" in body["error"]
    status, body = dashboard.post(f"/api/runs/{run.session_id}/cancel")
    assert status == 200 and body["state"] == "canceled"
    run.wait_stopped(30)
    doc = dashboard.get(f"/api/runs/{run.session_id}")
    assert doc["summary"]["state"] == "canceled"
    assert doc["nodes"].get("hold") != "running"
    status, body = dashboard.post(f"/api/runs/{run.session_id}/resume", {"checkpoint": "/x.pkl"})
    assert status == 409 and "no checkpoint" in body["error"]


def test_runs_list_filters_and_workers(pool, dashboard):
    done = submit(pool, dash_flows.gated_pair(), initial_channel={"go": True})
    done.wait(30)
    live = submit(pool, dash_flows.gated_pair())
    wait_until(_waiting(live, "hold"), 30, "hold at its gate")
    runs = dashboard.get("/api/runs")["runs"]
    by_id = {r["session_id"]: r for r in runs}
    assert by_id[done.session_id]["state"] == "completed" and by_id[live.session_id]["state"] == "running"
    assert [r["session_id"] for r in runs].index(live.session_id) < [r["session_id"] for r in runs].index(done.session_id)
    assert [r["session_id"] for r in dashboard.get("/api/runs?state=running")["runs"]] == [live.session_id]
    assert dashboard.get("/api/runs?workflow=nope")["runs"] == []
    status, body, _ = dashboard.request("GET", "/api/runs?state=bogus")
    assert status == 400 and "unknown state" in body["error"]

    workers = {w["name"]: w for w in dashboard.get("/api/workers")["workers"]}
    busy = [w for w in workers.values() if w["session_id"] == live.session_id]
    assert len(busy) == 1 and busy[0]["task_id"] == "hold"
    assert {f"{pool.prefix}-w0", f"{pool.prefix}-w1"} <= set(workers)
    live.channel.set("go", True)
    live.wait(30)


def test_bad_input_gets_clear_errors(pool, dashboard):
    status, body, _ = dashboard.request("GET", "/api/runs/no-such-run")
    assert status == 404 and "no-such-run" in body["error"]
    status, body, _ = dashboard.request("GET", "/api/runs/bad%20id!")
    assert status == 400 and "session" in body["error"].lower()
    run = submit(pool, dash_flows.gated_pair(), initial_channel={"go": True})
    run.wait(30)
    status, body, _ = dashboard.request("GET", f"/api/runs/{run.session_id}/tasks/nope")
    assert status == 404 and "no task 'nope'" in body["error"]
    status, body, _ = dashboard.request("POST", f"/api/runs/{run.session_id}/explode", {})
    assert status == 404 and "no action" in body["error"]


def test_the_pages_are_served_with_a_strict_policy(dashboard):
    for path in ("/", "/workers", "/runs/abc"):
        status, body, headers = dashboard.request("GET", path)
        assert status == 200 and "<!doctype html>" in body
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "'unsafe-inline'" not in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
    assert dashboard.get("/healthz") == {"ok": True}


def test_results_are_previewed_only_with_the_pools_key(redis_url):
    """With GRAFLOW_SECRET_KEY on the pool, a dashboard with the same key shows a result; one
    with another key refuses it and says why (it never loads a payload it cannot verify)."""
    from dashboard_server import Dashboard
    from workerpool import Pool

    key, other = "k" * 32, "x" * 32
    with Pool(redis_url, size=1, extra_paths=[str(dash_flows.__file__).rsplit("/", 1)[0]],
              GRAFLOW_SECRET_KEY=key, GRAFLOW_SESSION_TTL="300") as pool:  # fmt: skip
        run = submit(pool, dash_flows.pickled_result(), secret_key=key)
        run.wait(30)
        same = Dashboard(redis_url, pool.prefix, GRAFLOW_SECRET_KEY=key)
        wrong = Dashboard(redis_url, pool.prefix, GRAFLOW_SECRET_KEY=other)
        try:
            shown = same.get(f"/api/runs/{run.session_id}/tasks/make")["result"]
            assert shown["type"] == "set" and shown["text"] == "{1, 2, 3}"
            refused = wrong.get(f"/api/runs/{run.session_id}/tasks/make")["result"]
            assert refused["present"] and refused["text"] == ""
            assert refused["note"].startswith("cannot preview: ") and "signature" in refused["note"].lower()
            # The rest of the page does not depend on the key.
            assert wrong.get(f"/api/runs/{run.session_id}")["summary"]["state"] == "completed"
        finally:
            same.stop()
            wrong.stop()


def test_a_task_added_at_run_time_joins_the_graph(pool, dashboard):
    run = submit(pool, dash_flows.spawner())
    wait_until(_waiting(run, "spawn"), 30, "spawn at its gate")
    doc = dashboard.get(f"/api/runs/{run.session_id}")
    assert "child" not in {n["id"] for n in doc["shape"]["nodes"]}
    run.channel.set("go", True)
    wait_until(_waiting(run, "child"), 30, "child at its gate")
    doc = dashboard.get(f"/api/runs/{run.session_id}")
    child = next(n for n in doc["shape"]["nodes"] if n["id"] == "child")
    assert child["dynamic"] and ["spawn", "child"] in doc["shape"]["edges"]
    assert doc["nodes"]["child"] == "running" and "child" in doc["layout"]["nodes"]
    assert dashboard.get(f"/api/runs/{run.session_id}/tasks/child")["parent"] == "spawn"
    run.channel.set("go2", True)
    run.wait(30)
    assert dashboard.get(f"/api/runs/{run.session_id}")["nodes"]["child"] == "completed"
