"""Fixtures of the dashboard tests: a real worker pool and a real ``graflow dashboard``.

The dashboard is the command itself, started as a subprocess on a free port (``--port 0``,
the address it prints), against the pool's private prefix; tests talk to it over HTTP
(``dashboard_server``) or drive it in Chromium (``test_browser.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dashboard_server import Dashboard
from workerpool import Pool

HERE = Path(__file__).resolve().parent

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def pool(redis_url: str) -> Iterator[Pool]:
    with Pool(redis_url, size=2, extra_paths=[str(HERE)], GRAFLOW_SESSION_TTL="300") as p:
        yield p


@pytest.fixture
def dashboard(redis_url: str, pool: Pool) -> Iterator[Dashboard]:
    board = Dashboard(redis_url, pool.prefix)
    try:
        yield board
    finally:
        board.stop()

