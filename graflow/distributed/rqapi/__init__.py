"""The one place graflow imports rq from (docs/rq.md).

Every other graflow module takes rq's names from here, so an rq upgrade is checked in
one package: the public names below, the rq 2/3 differences (``compat``), rq's Redis
layout and undocumented modules graflow relies on (``layout``), and the list of every
private use with the test that fails when rq changes it (``private``). A test parses
graflow and fails on an ``import rq`` anywhere else. Supported: rq 2.12 and 3.x.
"""

from __future__ import annotations

from rq import Callback, Queue, SimpleWorker, Worker, get_current_job
from rq.exceptions import AbandonedJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import (
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from rq.results import Result
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.timeouts import BaseDeathPenalty, TimerDeathPenalty, UnixSignalDeathPenalty
from rq.worker import DequeueStrategy, WorkerStatus

from graflow.distributed.rqapi.compat import RQ_MAJOR, RQ_VERSION

__all__ = [
    "RQ_MAJOR",
    "RQ_VERSION",
    "AbandonedJobError",
    "BaseDeathPenalty",
    "Callback",
    "DequeueStrategy",
    "FailedJobRegistry",
    "FinishedJobRegistry",
    "JSONSerializer",
    "Job",
    "JobStatus",
    "NoSuchJobError",
    "Queue",
    "RQScheduler",
    "Result",
    "ScheduledJobRegistry",
    "SimpleWorker",
    "StartedJobRegistry",
    "TimerDeathPenalty",
    "UnixSignalDeathPenalty",
    "Worker",
    "WorkerStatus",
    "get_current_job",
]
