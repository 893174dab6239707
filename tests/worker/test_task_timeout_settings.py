"""``--task-timeout`` / ``GRAFLOW_TASK_TIMEOUT``: the per-worker default timeout, off by default."""

from __future__ import annotations

import subprocess
import sys

import pytest
from workerpool import worker_env

from graflow.exceptions import ConfigError
from graflow.worker.main import build_parser, settings_from_args
from graflow.worker.settings import WorkerSettings

S = WorkerSettings.from_env_and_args


def test_off_by_default_and_zero_is_off() -> None:
    assert S(env={}).task_timeout is None
    assert S(env={"GRAFLOW_TASK_TIMEOUT": ""}).task_timeout is None
    assert S(env={"GRAFLOW_TASK_TIMEOUT": "0"}).task_timeout is None
    assert S(task_timeout=0, env={"GRAFLOW_TASK_TIMEOUT": "5"}).task_timeout is None


def test_flag_beats_variable() -> None:
    assert S(env={"GRAFLOW_TASK_TIMEOUT": "2.5"}).task_timeout == 2.5
    assert S(task_timeout=7, env={"GRAFLOW_TASK_TIMEOUT": "2.5"}).task_timeout == 7.0


def test_upstream_entry_point_reads_the_variable() -> None:
    args = build_parser({}).parse_args([])
    assert settings_from_args(args, env={"GRAFLOW_TASK_TIMEOUT": "3"}).task_timeout == 3.0


@pytest.mark.parametrize("bad", ["-1", "abc", "inf", "nan"])
def test_bad_values_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError, match="--task-timeout/GRAFLOW_TASK_TIMEOUT"):
        S(env={"GRAFLOW_TASK_TIMEOUT": bad})


def test_cli_flag_is_validated_before_anything_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "graflow", "worker", "--task-timeout", "-3", "--check"],
        env=worker_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "--task-timeout" in out.stderr
