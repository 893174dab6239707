"""Every examples/*.py the README shows runs to completion (exit 0) as `python examples/X.py`.

Examples that hand work to a pool run against real ``graflow worker`` subprocesses
(``tests/workerpool.Pool``); the others need no Redis. Each runs in an empty directory,
which must stay empty: graflow writes no file the program did not ask for.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from deploytools import ROOT, base_env
from workerpool import Pool

#: Examples that submit to a worker pool (they read GRAFLOW_REDIS_URL / GRAFLOW_KEY_PREFIX).
POOL_EXAMPLES = {"submit.py"}


def shown_examples() -> list[str]:
    return sorted(set(re.findall(r"examples/(\w+\.py)", (ROOT / "README.md").read_text())))


def _run(name: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "examples" / name)], cwd=cwd,
                          env={**base_env(), **env}, capture_output=True, text=True, timeout=90)  # fmt: skip


@pytest.mark.parametrize("name", [n for n in shown_examples() if n not in POOL_EXAMPLES])
def test_example_runs_in_process(name: str, tmp_path: Path) -> None:
    proc = _run(name, tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []  # nothing written into the working directory


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(POOL_EXAMPLES))
def test_example_runs_on_a_pool(name: str, redis_url: str, tmp_path: Path) -> None:
    assert name in shown_examples()
    with Pool(redis_url, 2) as pool:
        proc = _run(name, tmp_path, GRAFLOW_REDIS_URL=redis_url, GRAFLOW_KEY_PREFIX=pool.prefix)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "completed" in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_dynamic_example_prints_in_documented_order(tmp_path: Path) -> None:
    proc = _run("dynamic.py", tmp_path)
    assert proc.stdout.splitlines()[:3] == ["main", "extra", "after"]
