"""The supervisor's restart policy: back-off, crash-loop detection, settings (``restarts``)."""

from __future__ import annotations

import pytest

from graflow.exceptions import ConfigError
from graflow.worker.restarts import RestartPolicy, SlotHistory
from graflow.worker.settings import WorkerSettings


def test_back_off_doubles_up_to_its_maximum_and_a_crash_loop_gives_up() -> None:
    slot = SlotHistory(RestartPolicy(backoff=0.5, backoff_max=2.0, deaths=5, window=60.0))
    slot.started(0.0)
    delays = []
    for moment in (1.0, 2.0, 3.0, 4.0):
        delays.append(slot.died(finished_jobs=0, moment=moment))
        slot.started(moment)
    assert delays == [0.5, 1.0, 2.0, 2.0]
    assert slot.died(finished_jobs=0, moment=5.0) is None  # the fifth death within 60 s


def test_a_finished_job_or_a_long_life_ends_the_streak() -> None:
    slot = SlotHistory(RestartPolicy(backoff=0.5, backoff_max=30.0, deaths=3, window=60.0))
    slot.started(0.0)
    assert slot.died(0, moment=1.0) == 0.5
    slot.started(1.5)
    assert slot.died(0, moment=2.0) == 1.0
    slot.started(3.0)
    assert slot.died(finished_jobs=1, moment=4.0) == 0.5  # it served: start afresh
    slot.started(4.5)
    assert slot.died(0, moment=5.0) == 1.0
    slot.started(6.0)
    assert slot.died(0, moment=6.0 + 60.0) == 0.5  # up for a whole window: afresh too


def test_deaths_spread_wider_than_the_window_are_no_crash_loop() -> None:
    policy = RestartPolicy(backoff=0.0, backoff_max=0.0, deaths=3, window=10.0)
    slot = SlotHistory(policy)
    for start, death in ((0.0, 1.0), (7.5, 8.0)):
        slot.started(start)
        assert slot.died(0, moment=death) == 0.0
    slot.started(11.5)
    assert slot.died(0, moment=12.0) == 0.0  # the death at 1.0 is out of the window
    slot = SlotHistory(policy)
    for start, death in ((0.0, 1.0), (1.0, 2.0)):
        slot.started(start)
        assert slot.died(0, moment=death) == 0.0
    slot.started(2.0)
    assert slot.died(0, moment=10.5) is None  # three within 10 s


def test_settings_read_flags_then_environment_then_defaults() -> None:
    assert WorkerSettings.from_env_and_args(env={}).restart == RestartPolicy(0.5, 30.0, 5, 60.0)
    env = {"GRAFLOW_RESTART_BACKOFF": "1", "GRAFLOW_RESTART_BACKOFF_MAX": "8",
           "GRAFLOW_CRASH_LOOP_DEATHS": "3", "GRAFLOW_CRASH_LOOP_WINDOW": "20"}  # fmt: skip
    assert WorkerSettings.from_env_and_args(env=env).restart == RestartPolicy(1.0, 8.0, 3, 20.0)
    flags = WorkerSettings.from_env_and_args(env=env, restart_backoff=0.1, crash_loop_deaths=9)
    assert flags.restart == RestartPolicy(0.1, 8.0, 9, 20.0)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"GRAFLOW_CRASH_LOOP_DEATHS": "0"}, "--crash-loop-deaths"),
        ({"GRAFLOW_CRASH_LOOP_WINDOW": "0"}, "--crash-loop-window"),
        ({"GRAFLOW_RESTART_BACKOFF": "5", "GRAFLOW_RESTART_BACKOFF_MAX": "1"}, "--restart-backoff"),
        ({"GRAFLOW_RESTART_BACKOFF": "soon"}, "GRAFLOW_RESTART_BACKOFF"),
    ],
)
def test_unusable_numbers_are_refused_naming_the_setting(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        WorkerSettings.from_env_and_args(env=env)
