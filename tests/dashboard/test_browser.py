"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

A fan-out/fan-in run with a loop goes to two real workers; the page shows its nodes turn
completed; the worker running the gated task is killed with SIGKILL and the page marks
that node lost/redelivered, then completed once the task ran again elsewhere; another run
is canceled from the page through its confirmation dialog.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dash_flows
import pytest
from dashboard_server import Dashboard, submit
from workerpool import Pool, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent.parent / "docs"
#: Chromium's flags for a closed network and a root user (CI runs as root).
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=binary, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page_errors() -> list[str]:
    """What the page logged as errors; a test removes those it caused on purpose."""
    return []


@pytest.fixture
def page(browser: Any, page_errors: list[str]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    errors = page_errors
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.set_default_timeout(30_000)
    yield page
    context.close()
    assert not errors, f"the page logged errors: {errors}"


@pytest.fixture
def fast_pool(redis_url: str) -> Iterator[Pool]:
    """Two workers with a one-second lease, so a killed worker's task is lost and redelivered
    within a few seconds."""
    with Pool(redis_url, size=2, extra_paths=[str(HERE)], args=["--heartbeat", "1"], GRAFLOW_SESSION_TTL="300") as p:
        yield p


def node(page: Any, task_id: str, state: str) -> Any:
    return page.wait_for_selector(f'#graph [data-task="{task_id}"][data-state="{state}"]')


def test_a_run_is_followed_live_through_a_lost_worker(redis_url, fast_pool, page, tmp_path):
    pool = fast_pool
    board = Dashboard(redis_url, pool.prefix)
    try:
        run = submit(pool, dash_flows.fan_loop())
        page.goto(f"{board.url}/runs/{run.session_id}")
        node(page, "middle", "running")
        for task_id in ("start", "left", "right"):
            node(page, task_id, "completed")
        assert page.get_attribute('#graph [data-task="join"]', "data-state") == "pending"
        assert page.text_content("#state") == "running"

        # The worker running `middle` dies: the page marks the node, another worker runs it again.
        [attempt] = [a for a in run.running_attempts() if a.task_id == "middle"]
        victim = pool.procs[int(attempt.worker.rsplit("-w", 1)[1])]
        os.killpg(victim.pid, signal.SIGKILL)
        page.wait_for_selector('#graph [data-task="middle"]:is([data-state="lost"], [data-state="redelivered"])')
        wait_until(lambda: run.channel.get("waiting") == ["middle", "middle"], 30, "middle redelivered and waiting")
        page.click('#graph [data-task="middle"]')
        page.wait_for_selector("#task-panel .outcome-lost")
        shot = tmp_path / "run.png"
        page.screenshot(path=str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("GRAFLOW_DOCS_SCREENSHOT"):  # refreshes the README's picture
            shutil.copy(shot, DOCS / "dashboard-run.png")
        run.channel.set("go", True)
        node(page, "middle", "completed")
        node(page, "loop", "completed")
        page.wait_for_selector('#state [data-state="completed"]')
        assert "⚠1" in page.text_content('#graph [data-task="middle"] .node-badge')
        assert page.text_content('#graph [data-task="loop"] .node-badge') == "×3"
        assert page.get_attribute('#graph [data-task="ParallelGroup_1"]', "data-state") == "completed"
        latencies = page.evaluate("window.graflowLatencies")
        assert latencies and all(ms >= 0 for ms in latencies)

        # The task panel: attempts (the lost one too), the result shown as text, the logs.
        page.click('#graph [data-task="middle"]')
        page.wait_for_selector("#task-panel h2")
        panel = page.text_content("#task-panel")
        assert "lost" in panel and "completed" in panel
        page.wait_for_selector('#task-panel .writes li:has-text("middle.out")')
        page.click('#graph [data-task="join"]')
        page.wait_for_selector("#task-panel pre.result")
        assert "<b>not markup</b>" in page.text_content("#task-panel pre.result")
        assert page.query_selector("#task-panel b") is None  # user data never becomes markup
        page.click('#graph [data-task="start"]')
        page.wait_for_selector("#task-panel pre.logs")
        assert "starting the fan-out" in page.text_content("#task-panel pre.logs")

        # The runs page lists it, completed.
        page.goto(board.url)
        page.wait_for_selector(f'#runs tr[data-session="{run.session_id}"][data-state="completed"]')
        page.goto("about:blank")  # closes the page's live stream before the server stops
    finally:
        board.stop()


def test_a_run_is_canceled_from_its_page(pool, dashboard, page):
    run = submit(pool, dash_flows.gated_pair())
    page.goto(f"{dashboard.url}/runs/{run.session_id}")
    node(page, "hold", "running")
    # The workers page shows who runs it.
    page.goto(f"{dashboard.url}/workers")
    row = page.wait_for_selector('#workers tr[data-state="busy"]:has-text("hold")')
    assert "expires in" in row.text_content()
    page.go_back()
    node(page, "hold", "running")
    page.click("#cancel")
    page.wait_for_selector("dialog#confirm[open]")
    assert "cannot be undone" in page.text_content("dialog#confirm")
    page.click("dialog#confirm .confirm-cancel")  # changing one's mind changes nothing
    assert run.status().state == "running"
    page.click("#cancel")
    page.click("dialog#confirm .confirm-ok")
    page.wait_for_selector('#state [data-state="canceled"]')
    assert run.status().state == "canceled"
    assert page.is_disabled("#cancel")
    page.wait_for_selector('#graph [data-task="after"][data-state="skipped"]')


def test_a_refused_action_says_why(pool, dashboard, page, page_errors):
    run = submit(pool, dash_flows.checkpoint_then_fail(), initial_channel={"fail": True})
    with pytest.raises(Exception, match="second refuses"):
        run.wait(30)
    page.goto(f"{dashboard.url}/runs/{run.session_id}")
    page.wait_for_selector('#graph [data-task="second"][data-state="failed"]')
    assert "ValueError: second refuses" in page.text_content("#error-trace")
    page.wait_for_selector("#checkpoints tbody tr")
    assert page.is_enabled("#retry")
    # The failed run is retried from its checkpoint while still failing: it fails again,
    # and the page follows it back to failed.
    page.click("#retry")
    page.click("dialog#confirm .confirm-ok")
    page.wait_for_selector("#notice.ok")
    page.wait_for_selector('#state [data-state="failed"]')
    run.channel.set("fail", False)
    page.click("#checkpoints button.resume")
    page.click("dialog#confirm .confirm-ok")
    page.wait_for_selector('#state [data-state="completed"]')
    page.wait_for_selector('#graph [data-task="third"][data-state="completed"]')
    # Cancel no longer applies (the page disables it); clicked anyway, as from a page that
    # has not caught up yet, the server's refusal is shown as it is.
    page.evaluate("(() => { const b = document.getElementById('cancel'); b.disabled = false; b.click(); })()")
    page.click("dialog#confirm .confirm-ok")
    page.wait_for_selector("#notice.error")
    assert "already ended (completed)" in page.text_content("#notice")
    assert page_errors == ["Failed to load resource: the server responded with a status of 409 (Conflict)"]
    page_errors.clear()


def test_a_task_added_at_run_time_appears_on_the_page(pool, dashboard, page):
    run = submit(pool, dash_flows.spawner())
    page.goto(f"{dashboard.url}/runs/{run.session_id}")
    node(page, "spawn", "running")
    assert page.query_selector('#graph [data-task="child"]') is None
    run.channel.set("go", True)
    node(page, "child", "running")  # drawn when it appears, with an edge from spawn
    assert "dynamic" in page.get_attribute('#graph [data-task="child"]', "class")
    run.channel.set("go2", True)
    node(page, "child", "completed")
    page.wait_for_selector('#state [data-state="completed"]')
