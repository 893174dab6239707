"""Worker-runtime fixtures: one private rq queue per test, named after the test's key prefix."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from worker_helpers import cleanup_rq_keys


@pytest.fixture
def queue_name(redis_client: Any, key_prefix: str) -> Iterator[str]:
    """The test's queue (== its key prefix); rq's keys for it are deleted afterwards."""
    yield key_prefix
    cleanup_rq_keys(redis_client, key_prefix)
