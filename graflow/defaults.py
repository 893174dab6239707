"""Every default graflow uses, in one place (in the manner of rq's ``defaults.py``).

Each is the value a setting takes when neither a flag nor its environment variable sets
it; the module that reads the setting imports it from here. This is a ground-floor module:
it imports nothing.
"""

from __future__ import annotations

#: Seconds in a week: how long a finished run's keys, graphs and failed rq jobs are kept.
WEEK = 7 * 24 * 3600

# -- Redis ----------------------------------------------------------------------------
#: ``GRAFLOW_REDIS_URL``.
DEFAULT_URL = "redis://localhost:6379/0"
#: ``GRAFLOW_KEY_PREFIX``: every graflow key starts with it (graflow.keys).
DEFAULT_PREFIX = "graflow"

# -- retention --------------------------------------------------------------------------
#: ``GRAFLOW_SESSION_TTL``: seconds a finished run's keys are kept.
DEFAULT_SESSION_TTL = WEEK
#: ``GRAFLOW_GRAPH_TTL``: seconds a graph is kept once no live run uses it.
DEFAULT_GRAPH_TTL = WEEK
#: How long rq keeps a failed or abandoned graflow job (its failed registry entry).
DEFAULT_FAILURE_TTL = WEEK
#: ``GRAFLOW_FINISHED_JOB_TTL``: seconds a graflow worker keeps a completed rq job (its
#: hash and its entry in rq's finished registry) for ``rq info`` and rq-dashboard; rq's
#: own default ``result_ttl``. About 1.7 KB of Redis memory per job kept (docs/rq.md).
DEFAULT_FINISHED_JOB_TTL = 500

# -- workers ----------------------------------------------------------------------------
#: ``GRAFLOW_HEARTBEAT``: the lease in seconds, on the Redis server's clock, renewed every
#: third of it by the worker command's supervisor; a whole worker lost is failed over
#: 3-4 s later (see docs/failover.md).
DEFAULT_HEARTBEAT = 3.0
#: ``GRAFLOW_MAX_REDELIVERIES``: lost attempts before a task fails with WorkerLostError.
DEFAULT_MAX_REDELIVERIES = 3
#: ``GRAFLOW_RESTART_BACKOFF`` / ``_MAX``: seconds before a dead worker process restarts.
DEFAULT_RESTART_BACKOFF = 0.5
DEFAULT_RESTART_BACKOFF_MAX = 30.0
#: ``GRAFLOW_CRASH_LOOP_DEATHS`` within ``GRAFLOW_CRASH_LOOP_WINDOW`` seconds stop the pool.
DEFAULT_CRASH_LOOP_DEATHS = 5
DEFAULT_CRASH_LOOP_WINDOW = 60.0

# -- values -----------------------------------------------------------------------------
#: ``GRAFLOW_MAX_VALUE_BYTES``: the largest value sent to Redis in one piece.
DEFAULT_MAX_VALUE_BYTES = 64 * 1024 * 1024

# -- task output ------------------------------------------------------------------------
#: ``GRAFLOW_LOG_CAPTURE_BYTES``: bytes of stdout/stderr/logging kept per attempt (0: off):
#: the first half live, the last half as a rolling tail (graflow.worker.capture).
DEFAULT_LOG_CAPTURE_BYTES = 64 * 1024
#: Entries a run's output stream keeps at most (``XADD MAXLEN ~``), whatever the budget.
LOG_STREAM_MAXLEN = 10000
#: Seconds between the live flushes of a running attempt's output.
LOG_FLUSH_INTERVAL = 0.5
#: Channel keys noted per task as written (``P:session:{S}:writes``); past it, a marker.
WRITTEN_KEYS_CAP = 256

# -- checkpoints ------------------------------------------------------------------------
#: ``GRAFLOW_CHECKPOINT_DIR``: where relative checkpoint paths go.
DEFAULT_CHECKPOINT_DIRECTORY = "checkpoints"

# -- outages ----------------------------------------------------------------------------
#: ``GRAFLOW_REDIS_RETRY_FOR``: seconds a worker retries a run-state update while Redis
#: is unreachable.
DEFAULT_REDIS_RETRY_FOR = 60.0
#: ``GRAFLOW_WORKER_REDIS_WAIT``: seconds a starting worker retries Redis before exit 3.
DEFAULT_WORKER_REDIS_WAIT = 10.0
#: ``GRAFLOW_CONCURRENCY``: worker processes per ``graflow worker`` command.
DEFAULT_CONCURRENCY = 1

# -- metrics ----------------------------------------------------------------------------
#: ``GRAFLOW_METRICS_PORT``: the port of a worker command's Prometheus ``/metrics`` (0: off).
DEFAULT_METRICS_PORT = 0
#: ``GRAFLOW_METRICS_HOST``: loopback, so a worker on a shared host exposes nothing by
#: default; containers set 0.0.0.0 (deploy/docker-compose.yml, which publishes no port).
DEFAULT_METRICS_HOST = "127.0.0.1"
