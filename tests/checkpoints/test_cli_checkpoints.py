"""``graflow checkpoints list`` and ``graflow resume --local``, as subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ckutil import META_KEYS

from graflow.core.context import TaskExecutionContext
from graflow.core.decorators import task
from graflow.core.workflow import workflow


def graflow(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GRAFLOW_")}
    return subprocess.run(
        [sys.executable, "-m", "graflow", *args], env={**base, **(env or {})},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def one_error_line(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("graflow: error: "), done.stderr
    assert " — " in lines[0], lines[0]  # <what> — <fix>
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in lines[0]


def run_pipeline(directory: str = "ck", **kwargs: Any) -> Any:
    """``load >> report``; both checkpoint (auto-named) under ``directory``."""
    with workflow("cli") as wf:
        @task(inject_context=True)
        def load(ctx: TaskExecutionContext) -> int:
            ctx.checkpoint(path=f"{directory}/after_load", metadata={"stage": "loaded"})
            return 20

        @task(inject_context=True)
        def report(ctx: TaskExecutionContext, load: int) -> dict[str, int]:
            ctx.checkpoint(path=f"{directory}/after_report", metadata={"stage": "reported"})
            return {"total": load + 1}

        load >> report
        _, ctx = wf.execute(ret_context=True, **kwargs)
    return ctx


def test_list_prints_one_line_per_checkpoint() -> None:
    ctx = run_pipeline()
    done = graflow("checkpoints", "list", "ck")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    expected = [("ck/after_load.pkl", 1, "loaded"), ("ck/after_report.pkl", 2, "reported")]
    for line, (location, steps, stage) in zip(lines, expected, strict=True):
        shown, checkpoint_id, session, step, created, user = line.split("  ")
        assert shown == location and checkpoint_id.startswith(f"id={ctx.session_id}_{steps}_")
        assert (session, step) == (f"session={ctx.session_id}", f"steps={steps}")
        assert created.startswith("created_at=20") and created.endswith("Z")
        assert json.loads(user.removeprefix("metadata="))["stage"] == stage


def test_list_json_and_the_default_directory(workdir: Path) -> None:
    run_pipeline("elsewhere")
    done = graflow("checkpoints", "list", "--json", env={"GRAFLOW_CHECKPOINT_DIR": "elsewhere"})
    assert done.returncode == 0, done.stderr
    entries = json.loads(done.stdout)
    assert [e["location"] for e in entries] == ["elsewhere/after_load.pkl", "elsewhere/after_report.pkl"]
    assert all(set(e) == (META_KEYS - {"schema_version", "files", "signed", "graflow_version",
                                       "python_version"}) | {"location"} for e in entries)  # fmt: skip
    assert [e["user_metadata"]["stage"] for e in entries] == ["loaded", "reported"]


@pytest.mark.redis
def test_list_a_redis_url(redis_client: Any, redis_url: str, key_prefix: str) -> None:
    root = f"{redis_url}/{key_prefix}/ck"
    run_pipeline(root)
    done = graflow("checkpoints", "list", root)
    assert done.returncode == 0, done.stderr
    assert [line.split("  ")[0] for line in done.stdout.splitlines()] == [
        f"{root}/after_load.pkl", f"{root}/after_report.pkl",
    ]  # fmt: skip


def test_list_an_empty_or_missing_directory() -> None:
    os.mkdir("empty")
    done = graflow("checkpoints", "list", "empty")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    done = graflow("checkpoints", "list", "missing")
    assert done.returncode == 4 and done.stdout == ""
    one_error_line(done, "missing does not exist", "pass the directory")


def test_resume_local_prints_the_result() -> None:
    run_pipeline()
    done = graflow("resume", "ck/after_load.pkl", "--local")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"total": 21}


def test_resume_errors_and_exit_codes() -> None:
    run_pipeline()
    Path("ck/after_load.state.json").write_text("{")
    done = graflow("resume", "ck/after_load", "--local")
    assert done.returncode == 2 and done.stdout == ""
    one_error_line(done, "ck/after_load.state.json", "use another")
    done = graflow("resume", "ck/nothing", "--local")
    assert done.returncode == 4
    one_error_line(done, "no checkpoint at ck/nothing.meta.json")


@pytest.mark.parametrize(
    ("message", "hint", "line"),
    [
        ("no checkpoint at x; check the location", False, "no checkpoint at x — check the location"),
        ("a; b; c", False, "a — b; c"),  # only the first "; " separates what from fix
        ("bad --set x — use KEY=JSON; e.g. n=5", False, "bad --set x — use KEY=JSON; e.g. n=5"),
        ("two\n  lines", False, "two lines"),
        ("boom", True, "boom — run `graflow --log-level DEBUG …` again for the traceback"),
        ("interrupted", False, "interrupted"),
    ],
)
def test_cli_error_lines_read_what_dash_fix(message: str, hint: bool, line: str) -> None:
    from graflow.cli.common import error_line

    assert error_line(message, hint) == line


# -------------------------------------------- a warning is printed once, not twice

SKIPPING = "skipping incomplete or unreadable checkpoint"


def torn_directory() -> None:
    """``ck/`` with one good checkpoint and one base whose meta.json is missing."""
    run_pipeline()
    os.remove("ck/after_report.meta.json")


def test_cli_prints_a_skipped_checkpoint_warning_once() -> None:
    torn_directory()
    done = graflow("checkpoints", "list", "ck")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(SKIPPING) == 1, done.stderr
    assert "GraflowWarning:" not in done.stderr  # the log line, not a second warnings display
    assert [line.split("  ")[0] for line in done.stdout.splitlines()] == ["ck/after_load.pkl"]


def test_cli_warning_can_still_be_made_an_error() -> None:
    torn_directory()
    done = subprocess.run(
        # UserWarning, graflow's warnings' base: Python reads -W before a virtualenv's
        # packages are importable, so a -W naming graflow.exceptions.… would be ignored.
        [sys.executable, "-W", "error::UserWarning", "-m", "graflow", "checkpoints",
         "list", "ck"], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0 and done.stdout == ""
    one_error_line(done, SKIPPING)


LIBRARY = """
import logging, sys, warnings
from graflow.core.checkpoint import CheckpointManager
if sys.argv[1] == "logging":
    logging.basicConfig()
elif sys.argv[1] == "capture":
    logging.basicConfig()
    logging.captureWarnings(True)
elif sys.argv[1] == "catch":
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        CheckpointManager.list_checkpoints("ck")
    print(len(caught), caught[0].category.__name__, caught[0].filename == "<string>")
    sys.exit(0)
print(len(CheckpointManager.list_checkpoints("ck")))
"""


@pytest.mark.parametrize("setup", ["none", "logging", "capture"])
def test_library_prints_a_warning_once(setup: str) -> None:
    """Without logging configured (the log record goes to stderr through logging's last
    resort), with it, and with warnings routed to logging: one line each time."""
    torn_directory()
    done = subprocess.run([sys.executable, "-c", LIBRARY, setup], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1"]
    assert done.stderr.count(SKIPPING) == 1, done.stderr


def test_library_can_still_catch_the_warning() -> None:
    torn_directory()
    done = subprocess.run([sys.executable, "-c", LIBRARY, "catch"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "GraflowWarning", "True"]  # attributed to the caller's line
