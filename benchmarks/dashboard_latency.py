"""The dashboard following a 1,000-task fan-out live: event -> node colour latency.

    python benchmarks/dashboard_latency.py [--width 1000] [--runs 3] [--workers 2]

A private redis-server, ``--workers`` real ``graflow worker`` processes, a real
``graflow dashboard`` and Debian's headless Chromium (Playwright). Each run submits
``head >> (t0000 | … | t0999) >> tail``; ``head`` waits until the page has drawn the
graph, then the fan-out runs. For every task, the page records the milliseconds from its
``completed`` event (the Redis stream id: the server's clock, on this machine) to the
animation frame that turned its node green (``window.graflowLatencies``). Also reported:
the time to load and draw the run page, how many nodes turned green, and the longest
main-thread task the page ran (Chromium's ``longtask`` entries: a frozen page shows
here). Prints JSON with the median over runs of each run's median, p95 and max.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PrivateRedis, emit  # noqa: E402

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
LONGTASKS = """
window.__longest = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__longest = Math.max(window.__longest, e.duration);
}).observe({ type: "longtask", buffered: true });
"""


def fan_out(width: int) -> Any:
    from graflow import task, workflow
    from graflow.core.task import parallel

    with workflow(f"fan-out-{width}") as wf:

        @task(inject_context=True)
        def head(ctx: Any) -> None:
            channel = ctx.get_channel()
            deadline = time.monotonic() + 120
            while not channel.get("go") and time.monotonic() < deadline:
                time.sleep(0.01)

        def member(i: int) -> Any:
            @task(id=f"t{i:04d}")
            def run() -> int:
                return i

            return run

        @task
        def tail() -> None:
            return None

        head >> parallel(*[member(i) for i in range(width)]) >> tail
    return wf


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def one_run(url: str, prefix: str, board: str, browser: Any, width: int) -> dict[str, Any]:
    from graflow.distributed import submit

    run = submit(fan_out(width), url, queue=prefix, key_prefix=prefix)
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.add_init_script(LONGTASKS)
    started = time.perf_counter()
    page.goto(f"{board}/runs/{run.session_id}")
    page.wait_for_selector('#graph [data-task="t0000"]', timeout=60_000)
    page.wait_for_selector('#graph [data-task="head"][data-state="running"]', timeout=60_000)
    loaded = time.perf_counter() - started
    drawing = page.evaluate("window.__longest")
    page.evaluate("window.__longest = 0")
    run.channel.set("go", True)
    run.wait(300)
    page.wait_for_selector('#graph [data-task="tail"][data-state="completed"]', timeout=60_000)
    green = page.evaluate("document.querySelectorAll('#graph .node[data-state=completed]').length")
    latencies = page.evaluate("window.graflowLatencies")
    longest = page.evaluate("window.__longest")
    page.close()
    return {"load_s": loaded, "longest_task_loading_ms": drawing, "nodes_green": green, "samples": len(latencies), "median_ms": statistics.median(latencies),
            "p95_ms": _percentile(latencies, 0.95), "max_ms": max(latencies), "longest_task_ms": longest}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    binary = shutil.which("chromium")
    if binary is None:
        sys.exit("Debian's chromium is needed: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    redis = PrivateRedis()
    prefix = "gfbench"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    procs = [subprocess.Popen([sys.executable, "-m", "graflow", "worker", "--url", redis.url, "--prefix", prefix,
                               "--queue", prefix, "--name", f"bench-w{i}"], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for i in range(args.workers)]  # fmt: skip
    board = subprocess.Popen([sys.executable, "-m", "graflow", "dashboard", "--url", redis.url, "--prefix", prefix,
                              "--port", "0"], env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    procs.append(board)
    try:
        assert board.stdout is not None
        found = re.search(r"http://[^/ ]+", board.stdout.readline())
        if not found:
            sys.exit("the dashboard did not start")
        results = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=binary, args=CHROMIUM_ARGS)
            for _ in range(args.runs):
                results.append(one_run(redis.url, prefix, found.group(0), browser, args.width))
            browser.close()
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        redis.__exit__()
    summary = {k: statistics.median(r[k] for r in results) for k in results[0]}
    emit("dashboard_latency", {"width": args.width, "workers": args.workers, "runs": results, "median": summary})


if __name__ == "__main__":
    main()
